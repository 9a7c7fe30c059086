"""Start builtin replicas by forking a Python that has torch and transformers imported already.

On a 2-core CPU a builtin replica spends ~6 of its ~10 s cold start importing torch and
transformers. The local runtime keeps one such Python ready (`preload_server.py`, ~400 MiB,
no model loaded) and asks it to fork each builtin replica, which then only reads its weights.

A launch is forked only when the result is the process a plain spawn would have made: its argv
must run the preloaded entry module with this Python, and its environment may differ from the
preloaded Python's only in variables that are read when used, not at import (modelport's own,
tokens and S3 credentials). Anything else (an endpoint setting `OMP_NUM_THREADS`, say) gets a
plain spawn, as does every launch while the preloaded Python is still importing or has died.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ENTRY_MODULE = "modelport.cli.main"
_ANSWER_TIMEOUT_S = 10.0
_STOP_WAIT_S = 5.0
# read when used, not when a module is imported, so a forked child sees the launch's value
_READ_WHEN_USED_PREFIXES = ("MODELPORT_", "AWS_")
_READ_WHEN_USED = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})


def unforkable_reason(
    argv: list[str],
    env: Mapping[str, str],
    preloaded_env: Mapping[str, str],
    entry: str = ENTRY_MODULE,
    python: str = sys.executable,
) -> str | None:
    """Why this launch cannot be forked from the preloaded Python (None: it can)."""
    if argv[:3] != [python, "-m", entry]:
        return f"not a `{python} -m {entry}` command"
    for key in sorted(set(env) | set(preloaded_env)):
        if env.get(key) == preloaded_env.get(key):
            continue
        if key in _READ_WHEN_USED or key.startswith(_READ_WHEN_USED_PREFIXES):
            continue
        return f"its environment sets {key}, which libraries read at import"
    return None


class Preloader:
    """The runtime's handle on the preloaded Python: start it, fork from it, stop it.

    Blocking calls (the runtime runs them in a thread); one request at a time on the socket.
    """

    def __init__(self, log_path: Path, env: Mapping[str, str], entry: str = ENTRY_MODULE) -> None:
        """`entry`: the module (with a `main()`) that forked children run; `env`: this Python's."""
        self.log_path = log_path
        self.env = dict(env)
        self.entry = entry
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._ready = False
        self._failed = False

    def start(self) -> None:
        """Start the preloaded Python (returns at once; it is ready some seconds later)."""
        with self._lock:
            if self._proc is not None or self._failed:
                return
            ours, theirs = socket.socketpair()
            self.log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with open(fd, "ab") as log:
                argv = [sys.executable, "-m", "modelport.runtime.preload_server"]
                self._proc = subprocess.Popen(
                    [*argv, "--fd", str(theirs.fileno()), "--entry", self.entry],
                    env=self.env,
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            theirs.close()
            self._sock = ours
            self._reader = ours.makefile("rb")

    def ready(self) -> bool:
        """Whether the preloaded Python has finished its imports (never blocks)."""
        with self._lock:
            return self._check_ready()

    def _check_ready(self) -> bool:
        if self._ready or self._sock is None or self._failed:
            return self._ready
        readable, _, _ = select.select([self._sock], [], [], 0)
        if readable:
            message = self._read()
            if message is not None and message.get("ready"):
                self._ready = True
                logger.info("preloaded Python ready (imports took %s s)", message.get("import_s"))
            else:
                self._give_up(f"it did not start: {message}")
        return self._ready

    def spawn(self, argv: list[str], env: Mapping[str, str], log_path: Path, replica_id: str) -> int | None:
        """Fork a replica; its pid, or None (start it the plain way) with the reason logged."""
        reason = unforkable_reason(argv, env, self.env, self.entry)
        if reason is not None:
            logger.info("replica %s starts as a new Python: %s", replica_id, reason)
            return None
        with self._lock:
            if not self._check_ready():
                return None
            request = {"argv": argv, "env": dict(env), "log_path": str(log_path), "replica_id": replica_id}
            answer = self._ask({"op": "spawn", **request})
        pid = None if answer is None else answer.get("pid")
        if not isinstance(pid, int):
            logger.warning("the preloaded Python could not fork replica %s: %s", replica_id, answer)
            return None
        return pid

    def exit_code(self, pid: int, wait_s: float = 3.0) -> int | None:
        """The exit code of a replica this Python forked (None if unknown). Waits up to `wait_s`:
        a leader seen as a zombie may still have threads exiting, and is reaped only after them."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                if not self._ready:
                    return None
                answer = self._ask({"op": "exit_code", "pid": pid})
            code = None if answer is None else answer.get("code")
            if isinstance(code, int) or time.monotonic() >= deadline:
                return code if isinstance(code, int) else None
            time.sleep(0.05)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        assert self._sock is not None
        try:
            self._sock.settimeout(_ANSWER_TIMEOUT_S)
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            return self._read()
        except OSError as exc:
            self._give_up(f"{type(exc).__name__}: {exc}")
            return None

    def _read(self) -> dict[str, Any] | None:
        line = self._reader.readline()
        if not line:
            self._give_up("it exited")
            return None
        message = json.loads(line)
        return message if isinstance(message, dict) else None

    def _give_up(self, why: str) -> None:
        """Stop using the preloaded Python for good; replicas start the plain way from now on."""
        if not self._failed:
            logger.warning("preloaded Python unusable, starting replicas the plain way: %s", why)
        self._failed = True
        self._ready = False
        self._close_process()

    def close(self) -> None:
        """Stop the preloaded Python; the replicas it forked keep running (they are not its group)."""
        with self._lock:
            self._ready = False
            self._failed = True  # closed for good: no restart, no more forks
            self._close_process()

    def _close_process(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()  # the server exits on end of file
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
