"""Agent channel servers: agent CA, enrolment, mTLS gRPC, MQTT bridge, hub."""
