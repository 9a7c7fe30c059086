"""The engine's HTTP server: one model per process behind the OpenAI, TGI and TEI APIs."""
