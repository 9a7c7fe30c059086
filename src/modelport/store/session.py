"""One transaction shared by every store call in a context (an admin API call and its audit record).

Store methods open their own short transaction, unless `shared` made one current for their
engine: then they join it, so what a caller writes through several methods (a PUT's spec change,
its new revision row, its audit record) commits or rolls back as one. The current transaction
is a context variable, so it follows the request into the worker threads that `anyio.to_thread`
runs store calls in, and never leaks into another request. `after_commit` defers what must only
happen once the change is durable (waking the control loop, updating the in-memory key ring).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine


@dataclass
class Shared:
    """The transaction a context's store calls join, and what runs once it commits."""

    conn: Connection
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    def commit(self) -> None:
        self.conn.commit()
        callbacks, self.after_commit = self.after_commit, []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        self.conn.rollback()
        self.after_commit.clear()


_current: ContextVar[Shared | None] = ContextVar("modelport_store_transaction", default=None)


def current(engine: Engine) -> Shared | None:
    shared = _current.get()
    return shared if shared is not None and shared.conn.engine is engine else None


@contextlib.contextmanager
def shared(conn: Connection) -> Iterator[Shared]:
    """Make `conn`'s transaction the one store calls of this context join (the caller commits)."""
    state = Shared(conn)
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)


@contextlib.contextmanager
def begin(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction: the shared one (committed by its owner), or a new one
    committed on exit."""
    joined = current(engine)
    if joined is not None:
        yield joined.conn
        return
    with engine.begin() as conn:
        yield conn


@contextlib.contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A connection to read with: the shared one, so a caller reads its own uncommitted writes."""
    joined = current(engine)
    if joined is not None:
        yield joined.conn
        return
    with engine.connect() as conn:
        yield conn


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[None]:
    """Run the block's store calls as one transaction: join the shared one, or share a new one
    and commit it at the end (rolled back if the block raises)."""
    if current(engine) is not None:
        yield
        return
    with engine.connect() as conn, shared(conn) as state:
        try:
            yield
        except BaseException:
            state.rollback()
            raise
        state.commit()


def after_commit(engine: Engine, callback: Callable[[], None]) -> None:
    """Run `callback` once the shared transaction commits (never, if it rolls back); at once when
    none is shared (the caller's write is already committed)."""
    joined = current(engine)
    if joined is None:
        callback()
    else:
        joined.after_commit.append(callback)
