"""printgate: wire (what the gateway and the agent both speak: protobuf, MQTT topics, signed commands)."""

# gRPC trailing metadata of a refused call: when the agent may try again (seconds). Set by the
# gateway's channel server, read by the agent's client; one name for both sides.
RETRY_AFTER_KEY = "printgate-retry-after-s"
