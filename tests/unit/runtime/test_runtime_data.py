"""The runtime's pure parts: the persisted handle, log tails and port picking."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from modelport.runtime.base import ReplicaHandle
from modelport.runtime.local import free_port, tail_lines

HANDLE = ReplicaHandle(
    replica_id="ab" * 16,
    runtime="local",
    pid=4242,
    create_time=1767225600.37,
    port=41234,
    log_path="/data/replicas/abab.log",
    health_path="/health",
)


def test_handle_round_trips_through_json() -> None:
    stored = json.loads(json.dumps(HANDLE.to_json()))
    assert ReplicaHandle.from_json(stored) == HANDLE


def test_handle_from_json_defaults_the_health_path() -> None:
    stored = HANDLE.to_json()
    del stored["health_path"]
    assert ReplicaHandle.from_json(stored).health_path == "/health"


def test_tail_lines(tmp_path: Path) -> None:
    path = tmp_path / "replica.log"
    path.write_text("".join(f"line {i}\n" for i in range(10)))
    assert tail_lines(path, 3) == ["line 7", "line 8", "line 9"]
    assert tail_lines(path, 100) == [f"line {i}" for i in range(10)]
    assert tail_lines(path, 0) == []
    assert tail_lines(tmp_path / "missing.log", 5) == []


def test_tail_lines_reads_only_the_end_and_drops_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    long_line = "x" * 200_000  # longer than the window read from the end
    path.write_text(f"first\n{long_line}\nlast one\n\xff\n", errors="strict")
    assert tail_lines(path, 5) == ["last one", "\xff"]
    path.write_bytes(b"ok\n\xff\xfe broken utf-8\n")
    assert tail_lines(path, 1) == ["\ufffd\ufffd broken utf-8"]


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
