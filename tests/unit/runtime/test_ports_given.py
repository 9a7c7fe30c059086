"""Two replica launches never get one port (runtime/local.py PortsGiven).

The kernel may hand out a port again as soon as it is free, and a replica binds its port only
seconds after it was chosen; seen in a test run: two endpoints' replicas got the same port, the
second failed to bind, and the first answered the second's probes and traffic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modelport.runtime import local


class Kernel:
    """bind(0) that hands out the given ports in turn, as a kernel that reuses a freed port."""

    def __init__(self, ports: list[int]) -> None:
        self.ports: Iterator[int] = iter(ports)

    def socket(self, *args: Any) -> Any:
        kernel = self

        class Socket:
            def __enter__(self) -> Socket:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

            def bind(self, address: tuple[str, int]) -> None:
                self.port = next(kernel.ports)

            def getsockname(self) -> tuple[str, int]:
                return ("127.0.0.1", self.port)

        return Socket()


def test_a_port_given_to_a_replica_is_not_given_again_while_it_may_still_be_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local.socket, "socket", Kernel([5000, 5000, 5000, 5001, 5000]).socket)
    now = [0.0]
    ports = local.PortsGiven(hold_s=900, clock=lambda: now[0])
    assert ports.take() == 5000
    assert ports.take() == 5001  # 5000 came back twice from the kernel and was skipped
    now[0] = 901.0  # long after: a replica that got 5000 has bound it or gone
    assert ports.take() == 5000
