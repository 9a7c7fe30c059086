"""The store every test here works on: opened on `store_url` (SQLite and PostgreSQL), closed after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelport.store.repository import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()
