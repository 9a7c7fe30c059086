"""A local model folder with a truncated safetensors file, through the control plane's HTTP API
(the whole app in-process): refused at create and at update with the API's 422, nothing stored
or changed, where it used to be accepted and then fail every replica with a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import numpy as np
from safetensors.numpy import save_file

from tests.unit.control.api.control_app import ADMIN, api_error, run_api


def model_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text("{}")
    save_file({"w": np.ones((64, 64), np.float32)}, str(root / "model.safetensors"))
    return root


def test_a_truncated_folder_is_refused_at_create_and_update(tmp_path: Path) -> None:
    whole = model_folder(tmp_path / "whole")
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    weights = cut / "model.safetensors"
    size = weights.stat().st_size
    os.truncate(weights, size // 2)

    async def scenario(http: httpx.AsyncClient) -> None:
        body = {"name": "chat", "model": {"repository": str(cut)}}
        reply = await http.post("/v2/endpoint/default", json=body, headers=ADMIN)
        message = api_error(reply, 422, "validation", "model.repository")
        assert message == (
            f"{weights}: {size // 2} bytes on disk but its header describes {size}; "
            "the file is truncated or corrupt — pull it again"
        )
        assert (await http.get("/v2/endpoint/default", headers=ADMIN)).json() == {"items": []}

        body["model"]["repository"] = str(whole)  # type: ignore[index]
        assert (await http.post("/v2/endpoint/default", json=body, headers=ADMIN)).status_code == 201
        patch = {"model": {"repository": str(cut)}}
        reply = await http.put("/v2/endpoint/default/chat", json=patch, headers=ADMIN)
        assert str(weights) in api_error(reply, 422, "validation", "model.repository")
        stored = (await http.get("/v2/endpoint/default/chat", headers=ADMIN)).json()
        assert stored["model"]["repository"] == str(whole)

    run_api(tmp_path / "data", scenario)
