"""Replica tokens: derived from the replica id under an owner-only installation secret."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest

from modelport.runtime.replica_token import SECRET_BYTES, installation_secret, replica_token


def test_a_replica_token_is_stable_per_replica_and_differs_across_replicas(tmp_path: Path) -> None:
    path = tmp_path / "data" / "replica-secret"
    first = replica_token("replica-a", path)
    assert first == replica_token("replica-a", path)  # a restarted control plane computes the same
    assert first != replica_token("replica-b", path)
    assert len(first) == 64 and int(first, 16) >= 0
    secret = path.read_bytes()
    assert len(secret) == SECRET_BYTES
    assert first == hmac.new(secret, b"replica-a", hashlib.sha256).hexdigest()
    # another installation (another secret) gives the same replica id another token
    assert replica_token("replica-a", tmp_path / "other" / "replica-secret") != first


def test_the_secret_file_is_created_owner_only_and_refused_when_others_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "replica-secret"
    installation_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["replica-secret"]  # no temporary file left behind

    shared = tmp_path / "shared-secret"
    shared.write_bytes(b"x" * SECRET_BYTES)
    shared.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        installation_secret(shared)
