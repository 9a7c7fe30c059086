"""The admin token: created on first start, kept in an owner-only file, compared as a hash.

The file is what the local CLI and SDK read (like a kubeconfig); the server keeps only the
SHA-256 of the token and compares in constant time, so the token never sits in a log or a
database.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

TOKEN_PREFIX = "mp_admin_"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def ensure_admin_token(path: Path) -> tuple[bytes, str | None]:
    """Return (hash of the admin token, the token itself only if it was created just now)."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PermissionError(
                f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` and start again"
            )
        return token_hash(path.read_text().strip()), None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token_hash(token), token


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def bearer_matches(authorization: str | None, expected_hash: bytes) -> bool:
    """Check an `Authorization: Bearer <token>` header against the stored hash, in constant time."""
    token = bearer(authorization)
    return token is not None and hmac.compare_digest(token_hash(token), expected_hash)
