"""The control loop picks up after a crash that came between starting a replica and recording it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from modelport.control.reconcile.loop import ControlLoop
from modelport.gateway.routing import RoutingTable
from modelport.placement.resources import fields_from_spec, revision_from_spec
from modelport.runtime.local import LocalRuntime
from modelport.spec.endpoint import EndpointSpec
from modelport.store.records import ReplicaRecord
from modelport.store.repository import Store


def now() -> datetime:
    return datetime.now(UTC)


def test_interrupted_launch_is_discarded_and_replaced(tmp_path: Path, tiny_model: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    spec = EndpointSpec.model_validate({"name": "chat", "model": {"repository": str(tiny_model)}})
    endpoint = store.create_endpoint(fields_from_spec("default", spec), revision_from_spec(spec), now())
    # what a control plane killed mid-launch leaves: a record without a handle, and a process
    store.put_replica(
        ReplicaRecord(
            id="lost", endpoint_id=endpoint.id, generation=1, runtime="local", handle={}, phase="starting",
            restarts=0, last_error=None, started_at=now(), ready_at=None, exited_at=None,
        )
    )  # fmt: skip
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, "MODELPORT_REPLICA_ID": "lost"},
        start_new_session=True,
    )

    async def scenario() -> None:
        runtime = LocalRuntime(tmp_path / "logs")
        loop = ControlLoop(store, runtime, RoutingTable(), now)
        try:
            await loop.tick()
            assert orphan.wait(timeout=10) == -9
            [record] = [r for r in store.list_replicas() if r.id == "lost"]
            assert record.last_error == "launch interrupted by a control plane restart"
            assert record.phase in ("exited", "starting")  # then restarted in place after its backoff
        finally:
            ids = [r.id for r in store.list_replicas()]
            await loop.shutdown(stop_replicas=True)
            assert [await runtime.discard(rid) for rid in ids] == [0] * len(ids)  # nothing left running
            await runtime.close()

    try:
        asyncio.run(scenario())
    finally:
        if orphan.poll() is None:
            orphan.kill()
        store.close()
