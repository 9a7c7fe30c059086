"""ManagedServer starts a real subprocess, waits for health and leaves nothing behind."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from modelport.bench.process import ManagedServer, ServerStartError, free_port

# serves /health after a short delay and spawns a child that ignores SIGTERM
SERVER = textwrap.dedent(
    """
    import http.server, signal, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    print("child", child.pid, flush=True)
    time.sleep(0.5)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def test_start_wait_and_stop_kills_the_whole_tree(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    server = ManagedServer(
        "fake",
        [sys.executable, str(script), str(port)],
        f"http://127.0.0.1:{port}/health",
        tmp_path / "fake.log",
        ready_timeout_s=30,
        stop_grace_s=2,
    )
    with server:
        assert server.startup_s is not None and server.startup_s >= 0.4
        pids = server.running_pids()
        assert len(pids) == 2
    assert not [
        p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert "child" in (tmp_path / "fake.log").read_text()


def test_exit_before_ready_reports_log(tmp_path: Path) -> None:
    server = ManagedServer(
        "dies",
        [sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"],
        f"http://127.0.0.1:{free_port()}/health",
        tmp_path / "dies.log",
        ready_timeout_s=30,
    )
    with pytest.raises(ServerStartError, match=r"exited with 3(.|\n)*no model here"), server:
        pass


def test_not_ready_in_time(tmp_path: Path) -> None:
    server = ManagedServer(
        "slow",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        f"http://127.0.0.1:{free_port()}/health",
        tmp_path / "slow.log",
        ready_timeout_s=1.5,
        stop_grace_s=2,
    )
    with pytest.raises(ServerStartError, match="not healthy"), server:
        pass
    assert server.proc is not None and server.proc.poll() is not None
