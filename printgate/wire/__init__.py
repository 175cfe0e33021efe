"""printgate: wire (what the gateway and the agent both speak: protobuf, MQTT topics, signed commands)."""

# gRPC trailing metadata of a refused call: when the agent may try again (seconds). Set by the
# gateway's channel server, read by the agent's client; one name for both sides.
RETRY_AFTER_KEY = "printgate-retry-after-s"

# The largest gRPC message the channel server accepts; the agent seals readings batches well
# under it and fleet ingest's own payload limit is the same number (one limit for both sides).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
