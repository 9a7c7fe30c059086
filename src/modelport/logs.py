"""Process logging for the long-running commands (`up`, `serve`)."""

from __future__ import annotations

import logging

# HTTP client libraries log every request at INFO (with its URL): noise in a replica's log tail,
# which is what a failed endpoint shows its user.
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "botocore", "boto3", "urllib3", "huggingface_hub")


def configure(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
