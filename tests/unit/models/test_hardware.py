"""The hardware catalog: memory as drivers report it, instance lookup, price overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelport.models.hardware import (
    UnknownHardwareError,
    catalog,
    default_prices,
    find_option,
    load_prices,
    local_cpu_option,
)

MIB = 2**20


def test_memory_is_the_driver_total_not_the_marketing_figure() -> None:
    assert find_option("nvidia-a100", "x1").accelerator.memory_bytes == 81920 * MIB == 85_899_345_920
    assert find_option("nvidia-h100", "x1").accelerator.memory_bytes == 81559 * MIB
    assert find_option("nvidia-t4", "x1").accelerator.memory_bytes == 15360 * MIB
    assert find_option("amd-mi300x", "x1").accelerator.memory_bytes == 205_822_885_888


def test_catalog_has_every_accelerator_at_every_size_and_the_local_cpu() -> None:
    options = catalog(local_memory_bytes=16 * 2**30)
    types = {o.instance_type for o in options}
    assert len(types) == 12 and "local" in types
    assert {o.instance_size for o in options if o.instance_type == "nvidia-h200"} == {"x1", "x2", "x4", "x8"}
    local = options[-1]
    assert local.is_cpu and local.accelerator.memory_bytes == 16 * 2**30 and local.price_per_hour == 0


def test_find_option() -> None:
    h100 = find_option("nvidia-h100", "x4")
    assert (h100.count, h100.price_per_hour, h100.label) == (4, 18.0, "4× H100 80GB")
    assert find_option("local", "x1").is_cpu
    with pytest.raises(UnknownHardwareError, match="nvidia-l4"):
        find_option("nvidia-v100", "x1")
    with pytest.raises(UnknownHardwareError, match="x1, x2, x4, x8"):
        find_option("nvidia-l4", "x3")
    with pytest.raises(UnknownHardwareError, match="one size"):
        find_option("local", "x2")


def test_prices_file_overrides_per_gpu_hour(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"nvidia-h100": 2.0, "local": 0.25}))
    prices = load_prices(path)
    assert find_option("nvidia-h100", "x8", prices).price_per_hour == 16.0
    assert local_cpu_option(prices, memory_bytes=2**30).price_per_hour == 0.25
    assert find_option("nvidia-l4", "x1", prices).price_per_hour == 0.80  # the default stays


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"nvidia-h1000": 1}', "unknown instance type"),
        ('{"nvidia-h100": -1}', "non-negative"),
        ('{"nvidia-h100": "cheap"}', "non-negative"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_bad_prices_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_prices(path)


def test_prices_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"nvidia-l4": 0.5}')
    monkeypatch.setenv("MODELPORT_HARDWARE_PRICES", str(path))
    assert default_prices() == {"nvidia-l4": 0.5}
    monkeypatch.setenv("MODELPORT_HARDWARE_PRICES", "")
    assert default_prices() == {}
