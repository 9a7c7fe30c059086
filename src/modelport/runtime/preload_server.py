"""The pre-imported Python that forks builtin replicas (run by `runtime/preload.py`, never by hand).

`python -m modelport.runtime.preload_server --fd N --entry MODULE` imports torch, transformers
and the builtin engine once, tells its parent it is ready, then answers JSON lines on the
inherited socket `N`:

- `{"op": "spawn", "argv": [...], "env": {...}, "log_path": P, "replica_id": R}` forks a child
  that runs `MODULE.main()` with that argv and exactly that environment, in its own session,
  writing to P; the answer is `{"pid": N}`;
- `{"op": "exit_code", "pid": N}` answers `{"code": C}` (None while it runs or if unknown).

Forking after the imports is safe because nothing here has run a torch op (no OpenMP pool
exists yet) and OpenBLAS stops its idle threads around a fork by itself. Each child starts
its own session, gets the launch's environment, re-seeds Python's and NumPy's generators and
restarts the startup clock, so it is the replica a plain spawn would have made, minus ~6 s.
It exits when its parent closes the socket or dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import os
import random
import select
import signal
import socket
import sys
import time
import traceback
from collections import OrderedDict
from typing import Any

import setproctitle

from modelport.envs import IDENTITY_VARS

# imported before any replica is forked; the first is the one a cold start spends most time on
PRELOADED_MODULES = (
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.llama.modeling_llama",
    "transformers.models.qwen2.modeling_qwen2",
    "tokenizers",
    "safetensors.torch",
    "uvicorn",
    "modelport.engine.engine",
    "modelport.engine.loader",
    "modelport.server.app",
    "modelport.server.builder",
)
_KEPT_EXIT_CODES = 1024
_REAP_EVERY_S = 0.2
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """SIGKILL this process when its parent (the control plane) dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _exit_status(status: int) -> int:
    """An exit code as subprocess reports it: negative for a signal."""
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


class Preloaded:
    def __init__(self, conn: socket.socket, entry: str) -> None:
        self.conn = conn
        self.entry = entry
        self.exit_codes: OrderedDict[int, int] = OrderedDict()
        self.running: set[int] = set()

    def serve(self) -> None:
        reader = self.conn.makefile("rb")
        while True:
            ready, _, _ = select.select([self.conn], [], [], _REAP_EVERY_S)
            self._reap()
            if not ready:
                continue
            line = reader.readline()
            if not line:  # the parent closed the socket: it is shutting down
                return
            self._send(self._answer(json.loads(line)))

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "spawn":
            try:
                return {"pid": self._spawn(request)}
            except (OSError, KeyError, TypeError) as exc:
                return {"error": f"{type(exc).__name__}: {exc}"}
        if op == "exit_code":
            self._reap()
            return {"code": self.exit_codes.get(int(request["pid"]))}
        return {"error": f"unknown op {op!r}"}

    def _send(self, message: dict[str, Any]) -> None:
        self.conn.sendall(json.dumps(message).encode() + b"\n")

    def _reap(self) -> None:
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.running.clear()
                return
            if pid == 0:
                return
            self.running.discard(pid)
            self.exit_codes[pid] = _exit_status(status)
            while len(self.exit_codes) > _KEPT_EXIT_CODES:
                self.exit_codes.popitem(last=False)

    def _spawn(self, request: dict[str, Any]) -> int:
        argv = [str(a) for a in request["argv"]]
        env = {str(k): str(v) for k, v in request["env"].items()}
        log_path = str(request["log_path"])
        # what `ps` and /proc/<pid>/cmdline show: the replica's command, then the variables that
        # identify it, which its /proc environ (the parent's, then overwritten by the title) cannot
        marks = [f"{var.name}={env[var.name]}" for var in IDENTITY_VARS if var.name in env]
        title = " ".join([*argv, *marks])
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the replica; never returns
            _run_child(self.conn, log_fd, argv, env, title, self.entry)
        os.close(log_fd)
        self.exit_codes.pop(pid, None)  # a reused pid's old code is not this child's
        self.running.add(pid)
        return pid


def _run_child(
    conn: socket.socket, log_fd: int, argv: list[str], env: dict[str, str], title: str, entry: str
) -> None:
    code: int = 1
    try:
        setproctitle.setproctitle(title)  # `ps` shows the replica's command, not this server's
        conn.close()
        os.setsid()  # outlives the control plane; stop signals the whole group
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(null)
        os.close(log_fd)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(env)
        random.seed()
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()
        startup = sys.modules.get("modelport.engine.startup")
        if startup is not None:
            startup.restart_clock()  # type: ignore[attr-defined]
        module = importlib.import_module(entry)
        sys.argv = [str(module.__file__), *argv[3:]]
        module.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--entry", required=True)
    args = parser.parse_args()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the control plane
    conn = socket.socket(fileno=args.fd)
    started = time.monotonic()
    from modelport import envs

    envs.apply_process_defaults()
    try:
        importlib.import_module(args.entry)
        for name in PRELOADED_MODULES:
            importlib.import_module(name)
    except Exception as exc:  # the runtime then starts replicas the plain way
        conn.sendall(json.dumps({"error": f"import failed: {exc}"}).encode() + b"\n")
        raise
    seconds = round(time.monotonic() - started, 2)
    print(f"modelport preload: {len(PRELOADED_MODULES)} modules imported in {seconds} s", file=sys.stderr)
    conn.sendall(json.dumps({"ready": True, "import_s": seconds}).encode() + b"\n")
    Preloaded(conn, args.entry).serve()


if __name__ == "__main__":
    main()
