"""The control plane's /metrics on a real `modelport up`: requests by status, TTFT, time per output
token and end-to-end histograms, replica counts, cold starts and their duration, scale events,
and each replica engine's own metrics re-exported with its endpoint's labels."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.control_plane_process import ControlPlaneProcess

pytestmark = pytest.mark.timeout(600)


def samples(cp: ControlPlaneProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    page = cp.api("GET", "/metrics")
    assert page.status_code == 200
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(page.text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for have, v in found.get(name, []) if all(have.get(k) == x for k, x in labels.items()))


def test_metrics_cover_requests_replicas_cold_starts_scaling_and_engines(
    tmp_path: Path, tiny_model: Path
) -> None:
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo") as cp:
        scaling = {"minReplica": 0, "maxReplica": 1, "scaleToZeroTimeout": 60}
        body = {"name": "chat", "model": {"repository": str(tiny_model)}, "compute": {"scaling": scaling}}
        assert cp.api("POST", "/v2/endpoint/default", json=body).status_code == 201
        cp.wait_for("chat", "running", timeout=180)
        assert cp.api("POST", "/v2/endpoint/default/chat/scale-to-zero").status_code == 200
        cp.wait_for("chat", "scaledToZero", timeout=120)
        url = f"{cp.url}/endpoints/default/chat/v1/chat/completions"
        hi = [{"role": "user", "content": "hi"}]
        chat = {"model": "chat", "messages": hi, "max_tokens": 8, "stream": True}
        with httpx.stream("POST", url, json=chat, headers=cp.headers, timeout=120) as stream:  # wakes it
            assert stream.status_code == 200
            assert sum(1 for line in stream.iter_lines() if line.startswith("data: {")) > 2
        wrong = {**chat, "max_tokens": -1, "stream": False}
        bad = httpx.post(url, json=wrong, headers=cp.headers, timeout=60)
        assert bad.status_code == 400
        time.sleep(1.5)  # the autoscaler reads the engine's page every half second
        found = samples(cp)

    chat_labels = {"namespace": "default", "endpoint": "chat"}
    assert value(found, "modelport_gateway_requests_total", status="200", **chat_labels) == 1
    assert value(found, "modelport_gateway_requests_total", status="400", **chat_labels) == 1
    for histogram in ("modelport_gateway_first_byte_seconds", "modelport_gateway_request_seconds",
                      "modelport_gateway_time_per_output_token_seconds"):  # fmt: skip
        assert value(found, f"{histogram}_count", **chat_labels) >= 1, histogram
    assert value(found, "modelport_gateway_tokens_total", kind="completion", **chat_labels) >= 8
    assert value(found, "modelport_endpoint_replicas", kind="ready", **chat_labels) == 1
    assert value(found, "modelport_endpoint_replicas", kind="target", **chat_labels) == 1
    # the first start and the wake from zero were both cold; each took some time
    assert value(found, "modelport_replica_start_seconds_count", cold="true", **chat_labels) == 2
    assert value(found, "modelport_replica_start_seconds_sum", cold="true", **chat_labels) > 0
    assert value(found, "modelport_scale_events_total", cause="user", **chat_labels) >= 1  # scale-to-zero
    assert value(found, "modelport_scale_events_total", cause="request", **chat_labels) >= 1  # the wake
    # the engine's own metrics, labelled with the endpoint and replica they came from
    engine = [labels for labels, _ in found.get("modelport:num_requests_running", [])]
    assert engine and all(labels["endpoint"] == "chat" and labels["replica"] for labels in engine)
