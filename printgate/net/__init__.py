"""Network plumbing shared by the relay (gateway) and the tunnel client (agent)."""
