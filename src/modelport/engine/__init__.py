"""modelport's own engine: continuous batching over a paged KV cache on transformers model code.

Flow of one step: scheduler.py picks sequences and token counts under the KV budget →
runner.py packs them into one ragged batch and runs the transformers model, whose attention
calls attention.py (reads/writes kv_cache.py blocks) → sampling.py picks tokens →
sequence.py detokenizes and checks stops → engine.py hands outputs to the server.
"""
