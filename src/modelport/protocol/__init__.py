"""Wire models shared by the engine server, the gateway and the SDK (no torch imports here)."""
