"""`modelport bench cold-start` as a user runs it: every phase reported, in order, against a floor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from modelport.engine.startup import PHASES


def test_cold_start_report_has_every_phase_in_order(tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "bench", "cold-start", str(tiny_model), "--runs", "1",
         "--log-dir", str(tmp_path / "logs"), "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "first token" in done.stdout and "the floor" in done.stdout
    report = json.loads(out.read_text())
    weights = sum(f.stat().st_size for f in tiny_model.glob("*.safetensors"))
    assert report["floor"]["import_s"] > 0 and report["floor"]["weight_bytes"] == weights
    for path in ("direct", "gateway"):
        (run,) = report[path]
        times = [run["spawned_s"], *(run["phases"][p] for p in PHASES), run["first_token_s"]]
        assert times == sorted(times), (path, run)
    # the control plane forked the replica from its preloaded Python, and the report says so
    assert report["gateway"][0]["forked"] is True and report["preload_rss_bytes"] > 0
    assert "forked from the preloaded Python" in done.stdout
    (standby,) = report["standby"]
    assert standby["rss_bytes"] > 0
    assert report["gateway_vs_floor"] > 0


def test_cold_start_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "bench", "cold-start", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "config.json" in done.stderr
