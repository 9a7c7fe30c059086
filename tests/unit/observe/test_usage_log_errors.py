"""Which write failures the usage log blames on the store (keep the records queued) and which on
a record (set that one aside): observe/usage_log.py `_unreachable`."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from modelport.observe.usage_log import _unreachable


@pytest.mark.parametrize(
    "exc",
    [
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
        OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly")),
        ConnectionRefusedError(111, "refused"),
    ],
)
def test_the_store_being_unreachable_keeps_the_records_queued(exc: Exception) -> None:
    assert _unreachable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        DataError("INSERT", {}, Exception("value too long for type character varying(64)")),
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        StatementError("cannot encode", "INSERT", {}, TypeError("bad value")),
    ],
)
def test_a_record_the_database_refuses_is_its_own_fault(exc: Exception) -> None:
    assert not _unreachable(exc)
