"""Device selection: what `Model(device=...)` asks for and what a job reports it ran on."""

from __future__ import annotations

import os

import pytest

from fti.errors import ConfigError
from fti.models.devices import (
    describe_device,
    device_available,
    select_device,
    torch_device,
    xgboost_device,
)


def _accelerator() -> str | None:
    return next((d for d in ("cuda", "xla", "mps") if device_available(d)), None)


def test_auto_picks_the_best_device_present() -> None:
    assert select_device("auto") == (_accelerator() or "cpu")
    assert select_device(" CPU ") == "cpu"


@pytest.mark.skipif(device_available("cuda"), reason="this machine has a GPU")
def test_asking_for_an_absent_gpu_is_an_error() -> None:
    with pytest.raises(ConfigError, match="training device 'cuda' is not available on this"):
        select_device("cuda")


@pytest.mark.skipif(device_available("xla"), reason="this machine has an XLA device")
def test_asking_for_an_absent_tpu_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'xla' is not available.*torch_xla"):
        select_device("xla")


def test_unknown_devices_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"one of \['auto', 'cpu', 'cuda', 'xla', 'mps'\]"):
        select_device("tpu")


def test_describe_cpu() -> None:
    import torch  # noqa: F401 - describe_device("cpu") reports torch only once it is imported

    info = describe_device("cpu")
    assert info["name"] == "cpu" and info["precision"] == "fp32"
    assert info["cpu_count"] == os.cpu_count() and info["hardware"]
    assert info["torch"].startswith("2.") and info["torch_threads"] >= 1
    assert str(torch_device("cpu")) == "cpu"
    assert [xgboost_device(d) for d in ("cpu", "cuda", "xla", "mps")] == [
        "cpu",
        "cuda",
        "cpu",
        "cpu",
    ]
