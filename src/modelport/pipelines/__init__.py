"""Task pipelines: every Hub task that is not chat/completion or sentence embedding.

A request flows payload.py (wire body → `TaskRequest`) → the task's runner `prepare` (decode
media, check parameters; on the caller's side, so bad input fails before it queues) → the
`Batcher` (one worker thread; concurrent requests run as one batch) → the runner's `run_batch`
→ a `TaskOutput` (the JSON the Inference API answers, or image bytes, plus metering units).
"""
