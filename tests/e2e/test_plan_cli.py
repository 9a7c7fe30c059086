"""`modelport plan` on a Hub-shaped Llama-3.1-70B folder that holds only safetensors headers.

The folder has the real config.json, the 30 shards of the real checkpoint cut after their
headers (723 tensors with their dtypes, shapes and byte ranges: 141,107,412,992 bytes
described, a few kB on disk) and model.safetensors.index.json.

The expected answers, worked out by hand for --context 8192 --concurrency 16 (bf16, KV auto):
- weights 141,107,412,992 B, split over t GPUs; KV 80 × 8 × 128 × 2 × 2 = 327,680 B/token,
  2,684,354,560 B per 8192-token sequence, split over t GPUs (8 KV heads, t ≤ 8);
- usable per GPU = 0.9 × the driver's total; overhead per GPU = 1.5 GiB + 8192 ×
  (4 × 8192 + 3 × 28672 / t) × 2 + 2 × 256 × 128256 × 4 = 3.82 / 3.11 / 2.76 / 2.59 GB at t = 1/2/4/8;
- so each GPU needs 144.9 / 73.7 / 38.0 / 20.2 GB before any KV cache at t = 1/2/4/8.
  GPU          usable    t=1         t=2          t=4          t=8
  T4           14.5 GB   no          no           no           no (20.2 > 14.5)
  L4, A10G     21.7 GB   no          no           no           4 seqs (1.5 GB / 0.34)
  L40S         43.5 GB   no          no           8 (5.4/0.67) 69
  A100 40GB    38.7 GB   no          no           no (0.61 GB of KV < 0.67 per sequence)   54
  A100 80GB    77.3 GB   no          2 (3.6/1.34) 58           170
  H100         77.0 GB   no          2            58           169
  H200        135.7 GB   no (144.9)  46           145          344
  B200        173.0 GB   10 (28.1/2.68) 74        201          455
  RTX PRO 6000 92.4 GB   no          13 (18.7/1.34) 80         215
  MI300X      185.2 GB   15 (40.3/2.68) 83        219          491
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.model_headers import llama_tensors, write_hub_folder
from tests.unit.models.public_models import MODELS

LLAMA_70B = next(m for m in MODELS if m.name == "meta-llama/Llama-3.1-70B")

# (instance type, GPUs) -> max sequences at 8192 tokens; 0: does not fit
EXPECTED = {
    "nvidia-t4": (0, 0, 0, 0),
    "nvidia-l4": (0, 0, 0, 4),
    "nvidia-a10g": (0, 0, 0, 4),
    "nvidia-l40s": (0, 0, 8, 69),
    "nvidia-a100-40gb": (0, 0, 0, 54),
    "nvidia-a100": (0, 2, 58, 170),
    "nvidia-h100": (0, 2, 58, 169),
    "nvidia-h200": (0, 46, 145, 344),
    "nvidia-b200": (10, 74, 201, 455),
    "nvidia-rtx-pro-6000": (0, 13, 80, 215),
    "amd-mi300x": (15, 83, 219, 491),
}


@pytest.fixture(scope="module")
def llama_70b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "Llama-3.1-70B"
    total = write_hub_folder(folder, LLAMA_70B.config, llama_tensors(LLAMA_70B.config), shards=30)
    assert total == LLAMA_70B.checkpoint_bytes
    assert sum(f.stat().st_size for f in folder.iterdir()) < 1_000_000
    return folder


def _plan(*args: str, columns: int = 100) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELPORT_HARDWARE_PRICES": "", "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "modelport.cli.main", "plan", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_fit_and_concurrency_for_every_catalog_entry(llama_70b: Path) -> None:
    out = _plan(str(llama_70b), "--context", "8192", "--concurrency", "16", "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    assert data["model"]["parameter_source"] == "safetensors headers"
    assert data["model"]["parameters"] == 70_553_706_496
    assert data["weights_bytes"] == 141_107_412_992
    assert data["kv_bytes_per_token"] == 327_680
    assert data["kv_bytes_per_sequence"] == 2_684_354_560
    got: dict[str, list[int]] = {}
    for entry in data["evaluated"]:
        if entry["instance_type"] != "local":
            got.setdefault(entry["instance_type"], []).append(entry["max_sequences"])
            assert entry["fits"] == (entry["max_sequences"] > 0)
            assert entry["meets_concurrency"] == (entry["max_sequences"] >= 16)
    assert {k: tuple(v) for k, v in got.items()} == EXPECTED
    local = next(e for e in data["evaluated"] if e["instance_type"] == "local")
    if psutil.virtual_memory().total < 150e9:
        assert not local["fits"] and local["reason"].startswith("weights 141.1 GB")

    rows = {r["instance_type"]: r for r in data["rows"]}
    # per accelerator: the fewest GPUs that hold 16 sequences, else the fewest that fit at all
    picked = {k: (r["tensor_parallel"], r["meets_concurrency"]) for k, r in rows.items() if k != "local"}
    assert picked == {
        "nvidia-t4": (8, False),  # fits nowhere: the largest size is shown, with why
        "nvidia-l4": (8, False),
        "nvidia-a10g": (8, False),
        "nvidia-l40s": (8, True),
        "nvidia-a100-40gb": (8, True),
        "nvidia-a100": (4, True),
        "nvidia-h100": (4, True),
        "nvidia-h200": (2, True),
        "nvidia-b200": (2, True),
        "nvidia-rtx-pro-6000": (4, True),
        "amd-mi300x": (2, True),
    }
    # the cheapest per hour among those at the default prices: MI300X × 2 at $5.00
    # (A100 80GB × 4 and H200 × 2 cost $10.00, RTX PRO 6000 × 4 $7.20)
    cheapest = data["cheapest"]
    assert (cheapest["instance_type"], cheapest["instance_size"]) == ("amd-mi300x", "x2")
    assert cheapest["vllm_flags"] == [
        "--max-model-len",
        "8192",
        "--gpu-memory-utilization",
        "0.9",
        "--tensor-parallel-size",
        "2",
        "--kv-cache-dtype",
        "auto",
    ]


@pytest.mark.parametrize("columns", [80, 120])
def test_table_reads_in_a_terminal(llama_70b: Path, columns: int) -> None:
    out = _plan(str(llama_70b), "--context", "8192", "--concurrency", "16", columns=columns)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for name in ("T4 16GB", "L4 24GB", "A100 80GB", "H100 80GB", "H200 141GB", "B200 180GB", "MI300X 192GB"):
        assert name in text
    assert "local CPU" in text
    assert "✓" in text and "✗" in text
    assert "70.55B parameters · from safetensors headers · weights 141.1 GB at bf16" in text
    assert "Cheapest for 16 × 8,192-token sequences: 2× MI300X 192GB, $5.00/h" in text
    assert "vllm serve" in text and "--tensor-parallel-size 2" in text
    # everything but the command line fits the terminal; that one is left whole, to copy and paste
    assert max(len(line) for line in text.splitlines() if not line.startswith("  vllm serve")) <= columns


def test_hardware_filter_and_bad_input(llama_70b: Path, tmp_path: Path) -> None:
    out = _plan(str(llama_70b), "--hardware", "nvidia-h100,nvidia-h200", "--context", "4096", "--json")
    data = json.loads(out.stdout)
    assert {r["instance_type"] for r in data["rows"]} == {"nvidia-h100", "nvidia-h200"}
    bad = _plan(str(llama_70b), "--hardware", "nvidia-v100")
    assert bad.returncode == 2 and "unknown hardware nvidia-v100" in bad.stderr
    missing = _plan(str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a local model folder" in missing.stderr
    prices = tmp_path / "prices.json"
    prices.write_text('{"nvidia-h200": 1.0}')
    cheap = json.loads(_plan(str(llama_70b), "--prices", str(prices), "--context", "8192", "--json").stdout)
    assert cheap["cheapest"]["instance_type"] == "nvidia-h200"
