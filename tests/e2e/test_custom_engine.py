"""A user's own server (tests/support/custom_app.py, a FastAPI app) as an endpoint's engine.

Created through the control plane with `image.custom.command`, scaled to two replicas, called
through the gateway with the OpenAI SDK (plain and streamed) and the `text-generation` client
(the gateway translates TGI requests into the OpenAI routes the app has), metered, and stopped
cleanly when paused.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import openai
from text_generation import Client as TgiClient

from modelport.sdk import Client
from tests.support.control_plane_process import ControlPlaneProcess

APP = str(Path(__file__).resolve().parents[1] / "support" / "custom_app.py")


def custom_image(**extra: object) -> dict[str, object]:
    command = [sys.executable, APP, "--port", "{port}", "--name", "{name}"]
    return {"custom": {"command": command, "healthRoute": "/health", **extra}}


def test_a_custom_server_is_deployed_scaled_and_called_like_any_endpoint(
    tiny_model: Path, tmp_path: Path
) -> None:
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo", allow_custom_commands=True) as cp:
        client = Client(cp.url, token=cp.token)
        ep = client.create_endpoint("mine", model=str(tiny_model), image=custom_image(), min_replicas=2)
        deadline = time.monotonic() + 60
        while (ep := client.get_endpoint("mine")).state != "running" or ep.ready_replicas < 2:
            assert time.monotonic() < deadline, ep.message
            time.sleep(0.3)
        sdk = openai.OpenAI(base_url=f"{ep.url}/v1", api_key=cp.token, max_retries=0)
        reply = sdk.chat.completions.create(
            model="mine", messages=[{"role": "user", "content": "one two three"}], max_tokens=8
        )
        assert reply.choices[0].message.content == "one two three"
        stream = sdk.chat.completions.create(
            model="mine",
            messages=[{"role": "user", "content": "alpha beta"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        assert "".join(pieces) == "alpha beta"
        # TGI route on an OpenAI-only server: translated by the gateway
        tgi = TgiClient(ep.url, headers={"authorization": f"Bearer {cp.token}"})
        assert tgi.generate("red green", max_new_tokens=4).generated_text == "red green"
        # both replicas serve
        served_by = {
            httpx.post(
                f"{ep.url}/v1/chat/completions",
                headers={"authorization": f"Bearer {cp.token}"},
                json={"model": "mine", "messages": [{"role": "user", "content": "x"}]},
            ).headers["x-served-by"]
            for _ in range(12)
        }
        assert len(served_by) == 2
        client.get_endpoint("mine").pause()
        deadline = time.monotonic() + 30
        while any(pid for pid in map(int, served_by) if _alive(pid)):
            assert time.monotonic() < deadline, "custom replicas still running after pause"
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_sleeping_standby_is_woken_for_a_request_at_zero(tiny_model: Path, tmp_path: Path) -> None:
    """Sleep as a scale-to-zero level, through the control plane, with a server that has vLLM's
    sleep routes (`image.custom.sleepMode`; vLLM itself refuses sleep mode on the CPU, see
    docs/engines.md). At zero the warm standby is put to sleep; a request at zero wakes it and
    is answered by it, and the server never saw a generation request while asleep."""
    command = [sys.executable, APP, "--port", "{port}", "--name", "{name}", "--sleep-routes"]
    image = {"custom": {"command": command, "healthRoute": "/health", "sleepMode": True}}
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo", allow_custom_commands=True) as cp:
        client = Client(cp.url, token=cp.token)
        ep = client.create_endpoint(
            "sleepy",
            model=str(tiny_model),
            image=image,
            min_replicas=0,
            warm_standby=1,
            scale_to_zero_after_s=3,
        )
        # it starts a serving replica and a standby, then goes to zero keeping the standby, asleep
        deadline = time.monotonic() + 60
        while True:
            status = cp.endpoint("sleepy")["status"]
            assert isinstance(status, dict)
            standby = [r["id"][:8] for r in status["replicas"] if r["phase"] == "ready"]
            asleep = len(standby) == 1 and f"replica {standby[0]} is asleep" in cp.log_tail(200)
            if status["state"] == "scaledToZero" and status["standbyReplica"] == 1 and asleep:
                break
            assert time.monotonic() < deadline, f"{status}\n{cp.log_tail()}"
            time.sleep(0.2)
        assert "woke in" not in cp.log_tail(200)
        headers = {"authorization": f"Bearer {cp.token}"}
        reply = httpx.post(
            f"{ep.url}/v1/chat/completions",
            headers=headers,
            json={"model": "sleepy", "messages": [{"role": "user", "content": "wake up"}]},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text  # a 503 would mean it was routed while asleep
        assert reply.json()["choices"][0]["message"]["content"] == "wake up"
        # the standby served it: put to sleep once (at zero: both replicas, one per standby turn)
        # and woken once before this request reached it
        sleeps, wakes = map(int, reply.headers["x-sleeps"].split("/"))
        assert sleeps >= 1 and wakes == sleeps
        assert f"replica {standby[0]} woke in" in cp.log_tail(200)
        client.get_endpoint("sleepy").pause()
        cp.wait_for("sleepy", "paused", timeout=60, ready=0)
