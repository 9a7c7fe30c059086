"""A user's own server (tests/custom_app.py, a FastAPI app) as an endpoint's engine.

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
from tests.control_plane_process import ControlPlaneProcess

APP = str(Path(__file__).resolve().parents[1] / "custom_app.py")


def custom_image(**extra: object) -> dict[str, object]:
    command = [sys.executable, APP, "--port", "{port}", "--name", "{name}"]
    return {"custom": {"command": command, "healthRoute": "/health", **extra}}


def test_a_custom_server_is_deployed_scaled_and_called_like_any_endpoint(
    tiny_model: Path, tmp_path: Path
) -> None:
    with ControlPlaneProcess(tmp_path / "data", None, "--no-demo") as cp:
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
