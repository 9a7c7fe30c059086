"""Catch store I/O on an event loop's thread: every SQLAlchemy connection checkout, statement,
commit, rollback, return to the pool and close is checked, and one made on a thread that runs an
asyncio loop is noted with where it came from (an event loop that waits on the database stalls
every request the gateway holds on it)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

_ENGINE_EVENTS = ("before_cursor_execute", "begin", "commit", "rollback")
_POOL_EVENTS = ("connect", "checkout", "checkin", "close")


class LoopThreadGuard:
    def __init__(self) -> None:
        self.on_loop: list[tuple[str, str, str]] = []  # (thread, what, the stack that did it)
        self.off_loop = 0  # store I/O seen on other threads (the guard is known to be listening)

    def listener_for(self, what: str) -> Callable[..., None]:
        def listener(*_args: Any, **_kwargs: Any) -> None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a worker thread (or no loop at all)
                self.off_loop += 1
                return
            ours = [f for f in traceback.extract_stack() if "/modelport/" in f.filename]
            where = "".join(traceback.format_list(ours[-5:]))
            self.on_loop.append((threading.current_thread().name, what, where))

        return listener

    def report(self) -> str:
        """Each place once (its stack's last modelport frames), with what was done there."""
        places: dict[str, list[str]] = {}
        for thread, what, where in self.on_loop:
            places.setdefault(f"on thread {thread}:\n{where}", []).append(what)
        return "\n".join(f"{', '.join(sorted(set(done)))}, {place}" for place, done in places.items())


@contextlib.contextmanager
def loop_thread_guard() -> Iterator[LoopThreadGuard]:
    """Watch every engine and pool (class-level listeners) while the block runs."""
    guard = LoopThreadGuard()
    listeners: list[tuple[type[Engine] | type[Pool], str, Callable[..., None]]]
    listeners = [(Engine, name, guard.listener_for(name)) for name in _ENGINE_EVENTS]
    listeners += [(Pool, name, guard.listener_for(f"pool {name}")) for name in _POOL_EVENTS]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield guard
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
