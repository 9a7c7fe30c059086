"""The store on real SQLite and real PostgreSQL: round trips, uniqueness, migrations, time zones."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from modelport.store.records import EndpointFields, ModelRevision, ReplicaRecord, ScalingEvent
from modelport.store.repository import AlreadyExists, NotFound, Stale, Store, StoreBusy
from modelport.store.scaling import KEEP_PER_ENDPOINT
from modelport.store.tables import metadata

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def fields(name: str = "chat") -> EndpointFields:
    return EndpointFields(
        namespace="default", name=name, type="protected", accelerator="cpu", instance_type="local",
        instance_size="x1", min_replica=1, max_replica=3, scale_to_zero_timeout=15,
        scaling_measure={"pendingRequests": 4.0}, scale_to_zero_after_s=None, stabilization_s=None,
        warm_standby=0,
        vendor="local", region="eu", tags=["dev"], traffic=None,
        intent="active",
    )  # fmt: skip


REVISION = ModelRevision(
    repository="/models/chat", revision="abc", task="text-generation", framework="pytorch",
    image_kind="huggingface", image_config={}, env={"A": "1"}, secrets={"TOKEN": "s"},
    args=["--max-num-seqs", "8"],
)  # fmt: skip


def test_endpoint_round_trip(store: Store) -> None:
    created = store.create_endpoint(fields(), REVISION, NOW)
    assert (created.generation, created.good_generation, created.state) == (1, 0, "pending")
    got = store.get_endpoint("default", "chat")
    assert got == created == store.get_endpoint_by_id(created.id)
    assert got.tags == ["dev"] and got.scaling_measure == {"pendingRequests": 4.0}
    assert got.created_at == NOW and got.created_at.tzinfo is not None
    assert store.get_revision(created.id, 1) == REVISION
    assert [e.name for e in store.list_endpoints("default")] == ["chat"]
    assert store.list_endpoints("other") == []


def test_names_are_unique_per_namespace_even_under_concurrency(store: Store) -> None:
    store.create_endpoint(fields("a"), REVISION, NOW)
    with pytest.raises(AlreadyExists):
        store.create_endpoint(fields("a"), REVISION, NOW)
    store.create_endpoint(dataclasses.replace(fields("a"), namespace="team"), REVISION, NOW)
    outcomes: list[str] = []

    def create() -> None:
        try:
            store.create_endpoint(fields("race"), REVISION, NOW)
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["exists"] * 5


def test_updates_and_revisions(store: Store) -> None:
    ep = store.create_endpoint(fields(), REVISION, NOW)
    later = NOW + timedelta(minutes=1)
    updated = store.update_endpoint(ep.id, later, state="running", ready_replicas=1, intent="paused")
    assert (updated.state, updated.ready_replicas, updated.intent, updated.updated_at) == (
        "running", 1, "paused", later,
    )  # fmt: skip
    with pytest.raises(ValueError, match="nonsense"):
        store.update_endpoint(ep.id, later, nonsense=1)
    with pytest.raises(NotFound):
        store.update_endpoint(ep.id + 100, later, state="running")
    second = dataclasses.replace(REVISION, revision="def")
    assert store.add_revision(ep.id, second, later).generation == 2
    store.update_endpoint(ep.id, later, generation=1)  # a rollback moves the pointer back ...
    assert store.add_revision(ep.id, second, later).generation == 3  # ... numbers are never reused
    assert store.get_revision(ep.id, 2) == second
    with pytest.raises(NotFound):
        store.get_revision(ep.id, 9)


def test_replicas_and_delete(store: Store) -> None:
    ep = store.create_endpoint(fields(), REVISION, NOW)
    replica = ReplicaRecord(
        id="r1", endpoint_id=ep.id, generation=1, runtime="local", handle={"pid": 12, "port": 3},
        phase="starting", restarts=0, last_error=None, started_at=NOW, ready_at=None, exited_at=None,
    )  # fmt: skip
    store.put_replica(replica)
    ready = dataclasses.replace(replica, phase="ready", ready_at=NOW + timedelta(seconds=5))
    store.put_replica(ready)
    assert store.list_replicas(ep.id) == [ready] == store.list_replicas()
    store.delete_replica("r1")
    store.delete_replica("r1")  # idempotent
    store.put_replica(replica)
    store.delete_endpoint(ep.id)
    assert store.list_replicas() == [] and store.list_endpoints() == []
    with pytest.raises(NotFound):
        store.get_revision(ep.id, 1)


def test_reopening_keeps_data_and_migrations_are_idempotent(store_url: str) -> None:
    first = Store.open(store_url)
    first.create_endpoint(fields(), REVISION, NOW)
    first.close()
    again = Store.open(store_url)
    assert [e.name for e in again.list_endpoints()] == ["chat"]
    with again.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []  # schema == tables.py
    again.close()


def test_sqlite_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "store.db"
    Store.open(f"sqlite:///{path}").close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert make_url(f"sqlite:///{path}").database == str(path)


def test_conditional_update_refuses_to_overwrite_a_newer_change(store: Store) -> None:
    ep = store.create_endpoint(fields(), REVISION, NOW)
    later = NOW + timedelta(seconds=1)
    store.update_endpoint(ep.id, later, intent="paused")  # the user's change
    with pytest.raises(Stale):  # a writer that read the row before it
        store.update_endpoint(ep.id, later, if_unchanged_since=ep.updated_at, state="running")
    fresh = store.get_endpoint_by_id(ep.id)
    assert fresh.state == "pending" and fresh.intent == "paused"
    paused = store.update_endpoint(ep.id, later, if_unchanged_since=fresh.updated_at, state="paused")
    assert paused.state == "paused"


def test_one_control_plane_per_store(store_url: str) -> None:
    first, second = Store.open(store_url), Store.open(store_url)
    first.claim()
    with pytest.raises(StoreBusy, match="another control plane"):
        second.claim()
    first.close()  # released with its holder (a crashed process releases it the same way)
    second.claim()
    second.close()


def test_a_scaling_change_and_its_event_land_together_and_events_are_capped(store: Store) -> None:
    endpoint = store.create_endpoint(fields(), REVISION, NOW)

    def event(n: int) -> ScalingEvent:
        return ScalingEvent(
            endpoint.id, NOW + timedelta(seconds=n), 1, 2, "autoscaler", f"n={n}", {"pending": n}
        )

    scaled = store.update_endpoint(
        endpoint.id, NOW + timedelta(seconds=1), event=event(0), desired_replicas=2
    )
    assert scaled.desired_replicas == 2
    (recorded,) = store.scaling_events.list(endpoint.id)
    assert (recorded.reason, recorded.inputs, recorded.at) == ("n=0", {"pending": 0}, NOW)
    with pytest.raises(Stale):  # a change made meanwhile wins, and no event is left behind
        store.update_endpoint(endpoint.id, NOW, if_unchanged_since=endpoint.updated_at, event=event(1),
                              desired_replicas=3)  # fmt: skip
    assert len(store.scaling_events.list(endpoint.id)) == 1

    for n in range(2, KEEP_PER_ENDPOINT + 5):
        store.update_endpoint(endpoint.id, NOW, event=event(n), desired_replicas=2)
    kept = store.scaling_events.list(endpoint.id, limit=5000)
    assert len(kept) == KEEP_PER_ENDPOINT and kept[-1].reason == f"n={KEEP_PER_ENDPOINT + 4}"
    assert [e.reason for e in store.scaling_events.list(endpoint.id, limit=2)] == [
        f"n={KEEP_PER_ENDPOINT + 3}", f"n={KEEP_PER_ENDPOINT + 4}"
    ]  # fmt: skip
    store.delete_endpoint(endpoint.id)
    assert store.scaling_events.list(endpoint.id) == []
