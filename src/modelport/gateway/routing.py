"""What the gateway knows about endpoints: a snapshot the control loop publishes every tick.

The gateway never queries the store per request: it reads this table. Each endpoint view
carries the ready replicas to send traffic to (the current generation's when any is ready,
otherwise the previous one's, so a rollout shifts traffic only once new replicas are healthy).
In-flight counts per replica let balancing pick the least busy one and let the control loop
drain a replica before stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from modelport.spec.endpoint import EndpointState, EndpointType, Intent
from modelport.spec.traffic import Traffic

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALL_APIS = frozenset({"openai", "tgi", "tei"})  # what modelport's own engine serves


@dataclass(frozen=True)
class Route:
    replica_id: str
    address: str  # base URL of the replica, e.g. http://127.0.0.1:41234
    generation: int
    # sent as `Authorization: Bearer` (runtime/replica_token.py); kept out of reprs and logs
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class EndpointView:
    namespace: str
    name: str
    type: EndpointType
    intent: Intent
    state: EndpointState
    message: str
    routes: tuple[Route, ...] = ()
    task: str | None = "text-generation"
    apis: frozenset[str] = ALL_APIS  # the APIs the serving engine has; the rest are translated
    traffic: Traffic = field(default_factory=Traffic)
    networks: tuple[IPNetwork, ...] = ()  # a private endpoint's own allow-list (empty: the default)
    # the one model name the engine answers to (vLLM, llama.cpp); None: it takes any name
    model_name: str | None = None
    model: str | None = None  # the serving replicas' model repository and revision (usage, audit)
    revision: str | None = None


@dataclass
class RoutingTable:
    endpoints: dict[tuple[str, str], EndpointView] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _published: asyncio.Event | None = None  # set by the next publish; what held requests wait on

    def publish(self, views: Mapping[tuple[str, str], EndpointView]) -> None:
        self.endpoints = dict(views)
        if self._published is not None:
            self._published.set()
            self._published = None

    async def next_publish(self, timeout_s: float) -> None:
        """Return at the next publish, or after timeout_s."""
        if self._published is None:
            self._published = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._published.wait(), timeout_s)

    def withdraw(self, replica_id: str) -> None:
        """Stop routing to a replica now, before the next publish (it is about to be drained)."""
        for key, view in self.endpoints.items():
            if any(r.replica_id == replica_id for r in view.routes):
                routes = tuple(r for r in view.routes if r.replica_id != replica_id)
                self.endpoints[key] = dataclasses.replace(view, routes=routes)

    def get(self, namespace: str, name: str) -> EndpointView | None:
        return self.endpoints.get((namespace, name))

    def pick(self, view: EndpointView, exclude: frozenset[str] = frozenset()) -> Route | None:
        """Least in-flight replica; ties rotate so equal replicas share the load."""
        candidates = [r for r in view.routes if r.replica_id not in exclude]
        if not candidates:
            return None
        fewest = min(self.in_flight.get(r.replica_id, 0) for r in candidates)
        idle = [r for r in candidates if self.in_flight.get(r.replica_id, 0) == fewest]
        return idle[next(self._turn) % len(idle)]

    def acquire(self, replica_id: str) -> Callable[[], None]:
        """Count a request in flight to the replica; call the returned function once when done."""
        self.in_flight[replica_id] = self.in_flight.get(replica_id, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self.in_flight[replica_id] - 1
            if left:
                self.in_flight[replica_id] = left
            else:
                del self.in_flight[replica_id]

        return release

    async def drained(self, replica_id: str, timeout_s: float, poll_s: float = 0.1) -> bool:
        """Wait until no request is in flight to the replica (True) or the timeout passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.in_flight.get(replica_id, 0):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll_s)
        return True
