"""Each replica's token: only the gateway (and the control plane) may call a replica's engine.

Replicas listen on a loopback port, where any process on the host could reach them and skip
the gateway's keys, limits, metering and audit. So every replica is launched with a token in
its environment (`MODELPORT_REPLICA_TOKEN`, and the variable its engine checks, such as
vLLM's `VLLM_API_KEY`), and the gateway sends it as `Authorization: Bearer <token>`.

The token is derived, never stored: HMAC-SHA256 of the replica id under an installation secret,
a random file in the data dir (owner-only, beside the admin token) made on first use. A
restarted control plane that re-adopts running replicas computes the same tokens.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from modelport import envs

SECRET_BYTES = 32


def replica_token(replica_id: str, secret_path: Path | None = None) -> str:
    """The token of one replica (64 hex characters)."""
    secret = installation_secret(secret_path or envs.replica_secret_path())
    return hmac.new(secret, replica_id.encode(), hashlib.sha256).hexdigest()


@functools.cache
def installation_secret(path: Path) -> bytes:
    """The installation's secret, created (mode 0600) if there is none yet; read once per process."""
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(
            f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` and start again"
        )
    secret = path.read_bytes()
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"{path} is not a replica secret ({len(secret)} bytes); remove it and start again")
    return secret


def _create(path: Path) -> None:
    """Written whole to a private file, then linked into place: a reader never sees half of it,
    and of two processes creating it at once, the first link wins and both read that one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(SECRET_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
