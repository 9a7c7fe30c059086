"""The usage service on a real store: requests and tokens per endpoint or key, replica-seconds
clipped to the window and priced per second, and one endpoint's series."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from modelport.control.services.errors import ControlError
from modelport.control.services.usage_service import endpoint_series, usage_report
from modelport.ledger.billing import ReplicaRun
from modelport.placement.resources import fields_from_spec, revision_from_spec
from modelport.spec.endpoint import EndpointSpec
from modelport.store.records import ApiKeyRecord, UsageRecord
from modelport.store.repository import Store
from tests.unit.control.conftest import START

HOUR = timedelta(hours=1)


def request(
    n: int, at: datetime, key: str | None = "k1", endpoint: str = "chat", status: int = 200
) -> UsageRecord:
    return UsageRecord(f"r{n}", key, "default", endpoint, endpoint, None, "rep", "/v1/chat/completions",
                       status, 10, 20, 30.0, 5.0, at)  # fmt: skip


def run(replica: str, start: datetime, end: datetime | None, instance: str = "nvidia-l4") -> ReplicaRun:
    return ReplicaRun(replica, "default", "chat", instance, "x1", 1, start, end)


def key(key_id: str, name: str) -> ApiKeyRecord:
    return ApiKeyRecord(key_id, name, "hash", ["inference"], ["*"], None, None, None, "month", START,
                        None, None, None)  # fmt: skip


def test_per_endpoint_tokens_and_replica_seconds_priced_per_second(store: Store) -> None:
    minute = timedelta(minutes=1)
    store.usage.add([request(1, START + 5 * minute), request(2, START + 6 * minute, status=500),
                     request(3, START - HOUR)])  # fmt: skip
    store.runs.open(run("a", START - HOUR, START + HOUR / 2))  # half of it inside the window
    store.runs.open(run("b", START + HOUR / 2, None, "mystery-gpu"))  # live; a type the catalog lacks
    report = usage_report(store, "endpoint", START, START + 2 * HOUR, START + HOUR, {"nvidia-l4": 3.6})
    [item] = report["items"]
    assert (item["requests"], item["errors"], item["prompt_tokens"], item["completion_tokens"]) == (
        2,
        1,
        20,
        40,
    )
    assert item["replica_seconds"] == 1800 + 1800  # a: clipped at the window's start; b: up to now
    assert item["hardware"] == [
        {"instance": "mystery-gpu/x1", "seconds": 1800.0, "price_per_hour": 0.0},  # shown, not priced
        {"instance": "nvidia-l4/x1", "seconds": 1800.0, "price_per_hour": 3.6},
    ]
    assert item["cost_usd"] == pytest.approx(1.8)
    assert item["cost_per_million_tokens"] == pytest.approx(1.8 / 60 * 1e6)
    assert report["totals"] == {"requests": 2, "errors": 1, "prompt_tokens": 20, "completion_tokens": 40,
                                "units": {}, "replica_seconds": 3600.0, "cost_usd": 1.8}  # fmt: skip
    assert (report["from"], report["at"]) == (START.isoformat(), (START + HOUR).isoformat())


def test_an_endpoint_with_replica_time_and_no_requests_is_listed(store: Store) -> None:
    store.runs.open(run("a", START, START + HOUR))
    [item] = usage_report(store, "endpoint", None, None, START + HOUR, {})["items"]
    assert (item["endpoint"], item["requests"], item["replica_seconds"]) == ("chat", 0, 3600.0)
    assert item["cost_per_million_tokens"] is None  # no tokens to divide by
    assert item["units"] == {}


def test_units_are_totalled_per_endpoint_and_over_all(store: Store) -> None:
    """Audio seconds, images and the like that task routes reported, beside the tokens."""
    audio = [dataclasses.replace(request(n, START, endpoint="asr"), units={"audio_seconds": s})
             for n, s in ((1, 3.25), (2, 1.5))]  # fmt: skip
    images = dataclasses.replace(request(3, START, endpoint="sd"), units={"images": 2, "pixels": 524288})
    store.usage.add([*audio, images, request(4, START)])
    report = usage_report(store, "endpoint", None, None, START + HOUR, {})
    assert {i["endpoint"]: i["units"] for i in report["items"]} == {
        "asr": {"audio_seconds": 4.75},
        "chat": {},
        "sd": {"images": 2.0, "pixels": 524288.0},
    }
    assert report["totals"]["units"] == {"audio_seconds": 4.75, "images": 2.0, "pixels": 524288.0}
    by_key = usage_report(store, "key", None, None, START + HOUR, {})
    assert by_key["totals"]["units"] == report["totals"]["units"]


def test_per_key_with_the_keys_names(store: Store) -> None:
    store.keys.create(key("k1", "app"))
    store.usage.add([request(1, START), request(2, START, key="k1"), request(3, START, key=None)])
    report = usage_report(store, "key", None, None, START, {})
    assert [(i["key_id"], i["key_name"], i["requests"]) for i in report["items"]] == [
        (None, "", 1),
        ("k1", "app", 2),
    ]
    assert report["totals"]["requests"] == 3 and "cost_usd" not in report["totals"]


def test_a_series_is_for_an_endpoint_that_exists(store: Store) -> None:
    with pytest.raises(ControlError) as missing:
        endpoint_series(store, "default", "chat", START, START + HOUR, 60, START + HOUR)
    assert missing.value.status == 404
    spec = EndpointSpec.model_validate({"name": "chat", "model": {"repository": "org/model"}})
    store.create_endpoint(fields_from_spec("default", spec), revision_from_spec(spec), START)
    store.usage.add([request(1, START + timedelta(seconds=30)), request(2, START + timedelta(seconds=90))])
    store.runs.open(run("a", START, None))
    points = endpoint_series(store, "default", "chat", START, START + timedelta(minutes=3), 60, START + HOUR)
    assert [p["requests"] for p in points] == [1, 1, 0]
    assert points[0]["t"] == START.isoformat()
