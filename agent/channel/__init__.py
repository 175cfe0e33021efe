"""The agent side of the channel: enrolment, gRPC and MQTT clients, command checks."""
