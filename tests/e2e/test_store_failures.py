"""A real `modelport up` on PostgreSQL when the store refuses writes: an admin call with a
200-character X-Request-Id is recorded (clipped) and so is the request after it; an admin change
whose audit record cannot be written (a trigger refuses it) is rolled back and answered 503 in
the API's error shape, so neither the endpoint, its revisions nor the API keys change; once the
trail takes records again the same change goes through and the trail verifies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from modelport.store import tables
from modelport.store.repository import Store
from tests.support.control_plane_process import ControlPlaneProcess

pytestmark = pytest.mark.timeout(300)

REFUSE_ADMIN_RECORDS = """
CREATE FUNCTION refuse_admin() RETURNS trigger AS $$
BEGIN
  IF NEW.kind = 'admin' THEN RAISE EXCEPTION 'audit trail unavailable'; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER refuse_admin BEFORE INSERT ON audit_records FOR EACH ROW EXECUTE FUNCTION refuse_admin();
"""


@pytest.fixture
def cp(store_url: str, tmp_path: Path, tiny_model: Path) -> Iterator[ControlPlaneProcess]:
    with ControlPlaneProcess(tmp_path / "data", store_url, "--no-demo") as plane:
        body = {"name": "chat", "type": "public", "model": {"repository": str(tiny_model)}}
        assert plane.api("POST", "/v2/endpoint/default", json=body).status_code == 201
        assert plane.api("POST", "/v2/endpoint/default/chat/pause").status_code == 200
        yield plane


def count(store_url: str, table: tables.Table, *where: object) -> int:
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_long_request_fields_are_recorded_and_a_failed_audit_write_undoes_the_admin_change(
    cp: ControlPlaneProcess, store_url: str
) -> None:
    long_id = "r" * 200  # an X-Request-Id longer than its column: recorded clipped, not lost
    headers = {**cp.headers, "x-request-id": long_id}
    paused_again = httpx.post(f"{cp.url}/v2/endpoint/default/chat/pause", headers=headers)
    assert paused_again.status_code == 200, paused_again.text
    answer = httpx.post(f"{cp.url}/endpoints/default/chat/v1/completions", json={"prompt": "hi"})
    assert answer.status_code == 503, answer.text  # paused: answered, and recorded
    audit = tables.audit_records
    deadline = time.monotonic() + 15
    while count(store_url, tables.usage_records) < 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert count(store_url, audit, audit.c.kind == "inference") == 1, cp.log_tail()
    assert count(store_url, audit, audit.c.request_id == long_id[:63] + "…") == 1
    metrics = cp.api("GET", "/metrics").text
    assert "modelport_usage_write_failures_total 0.0" in metrics
    assert "modelport_usage_records_pending 0.0" in metrics

    before = cp.endpoint("chat")
    revisions = count(store_url, tables.model_revisions)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text(REFUSE_ADMIN_RECORDS))
    change = {"compute": {"scaling": {"maxReplica": 3}}, "model": {"env": {"MARK": "1"}}}
    refused = cp.api("PUT", "/v2/endpoint/default/chat", json=change)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error_type"] == "unavailable" and "audit record" in refused.json()["error"]
    after = cp.endpoint("chat")
    assert after["compute"] == before["compute"] and after["model"] == before["model"]
    assert count(store_url, tables.model_revisions) == revisions
    key = cp.api("POST", "/v2/keys", json={"name": "unrecorded", "scopes": ["inference"]})
    assert key.status_code == 503, key.text
    assert cp.api("GET", "/v2/keys").json()["items"] == []

    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_admin ON audit_records"))
    engine.dispose()
    done = cp.api("PUT", "/v2/endpoint/default/chat", json=change)
    assert done.status_code == 200, done.text
    assert done.json()["compute"]["scaling"]["maxReplica"] == 3
    assert count(store_url, tables.model_revisions) == revisions + 1

    store = Store.open(store_url)
    try:
        report = store.audit.verify()
        assert report.ok, report.reason
        actions = [r.action for r in store.audit.records() if r.kind == "admin"]
        assert actions.count("PUT /v2/endpoint/{namespace}/{name}") == 1  # only the one that happened
    finally:
        store.close()
