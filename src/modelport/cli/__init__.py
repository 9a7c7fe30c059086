"""The `modelport` command: starts servers or talks to them; no engine logic lives here."""
