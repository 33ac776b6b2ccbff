"""Which device a trainer runs on, and what that device is.

"auto" picks the best device present: a CUDA GPU, then a TPU through ``torch_xla``, then Apple
``mps``, then the CPU. An explicit choice is checked: asking for hardware that is not there is
an error, never a silent fall-back to the CPU.

>>> select_device("cpu")
'cpu'
>>> select_device("tpu")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
fti.errors.ConfigError: training device must be one of ['auto', 'cpu', 'cuda', ...], got 'tpu'
>>> describe_device("cpu")["precision"]
'fp32'
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import sys
from typing import Any

from fti.errors import ConfigError

logger = logging.getLogger(__name__)

#: Devices a trainer can be asked for explicitly; "auto" picks among them in this order.
DEVICES: tuple[str, ...] = ("cpu", "cuda", "xla", "mps")
_AUTO_ORDER: tuple[str, ...] = ("cuda", "xla", "mps")
_HINTS = {
    "cuda": "torch sees no CUDA GPU (torch.cuda.is_available() is False)",
    "xla": "torch_xla is not installed or finds no TPU/XLA device",
    "mps": "torch sees no Apple MPS device (torch.backends.mps.is_available() is False)",
}


def select_device(requested: str, uses_torch: bool = True) -> str:
    """Resolve ``requested`` ("auto", "cpu", "cuda", "xla" or "mps") to an available device.

    A trainer that does not run on torch (`uses_torch=False`: XGBoost) resolves "auto" to
    "cuda" or "cpu" without importing torch, which takes seconds: the CUDA probe then asks
    XGBoost's build and the NVIDIA driver instead.

    >>> select_device(" CPU ")
    'cpu'
    >>> select_device("auto", uses_torch=False) in ("cpu", "cuda")
    True
    """
    choice = requested.strip().lower()
    if choice == "auto" and not uses_torch:
        found = "cuda" if _cuda_without_torch() else "cpu"
        logger.info("device auto resolved to %s (without torch)", found)
        return found
    if choice == "auto":
        found = next((name for name in _AUTO_ORDER if device_available(name)), "cpu")
        logger.info("device auto resolved to %s", found)
        return found
    if choice not in DEVICES:
        raise ConfigError(f"training device must be one of {['auto', *DEVICES]}, got {requested!r}")
    if not device_available(choice):
        raise ConfigError(
            f"training device {choice!r} is not available on this machine: {_HINTS[choice]}; "
            "set training.device to 'auto' or 'cpu' (FTI_TRAINING__DEVICE)"
        )
    return choice


def device_available(name: str) -> bool:
    """True when this process can run torch on device ``name``.

    >>> device_available("cpu")
    True
    """
    if name == "cpu":
        return True
    if name == "xla":
        return _xla_available()
    torch = _torch()
    if torch is None:
        return False
    if name == "cuda":
        return bool(torch.cuda.is_available())
    if name == "mps":
        return bool(torch.backends.mps.is_available())
    return False


def _cuda_without_torch() -> bool:
    """True when XGBoost was built with CUDA and an NVIDIA driver is loaded."""
    if not os.path.exists("/proc/driver/nvidia/version"):
        return False
    try:
        import xgboost
    except ImportError:
        return False
    return str(xgboost.build_info().get("USE_CUDA", "")).upper() in ("ON", "TRUE", "1")


def _torch() -> Any:
    try:
        import torch  # imported here: slow to import and only needed to probe for hardware
    except ImportError:
        logger.info("torch is not installed; only the cpu device is available")
        return None
    return torch


def _xla_available() -> bool:
    if importlib.util.find_spec("torch_xla") is None:
        return False
    try:
        xm = _xla_model()
        return bool(xm.xla_device_hw(xm.xla_device()))
    except Exception as ex:  # torch_xla raises RuntimeError and others when no device is there
        logger.info("torch_xla is installed but found no device: %s", ex)
        return False


def _xla_model() -> Any:
    import torch_xla.core.xla_model as xm  # optional; present on TPU hosts only

    return xm


def torch_device(name: str) -> Any:
    """The ``torch.device`` for a device name returned by `select_device`.

    >>> str(torch_device("cpu"))
    'cpu'
    """
    import torch

    if name == "xla":
        return _xla_model().xla_device()
    return torch.device(name)


def describe_device(name: str) -> dict[str, Any]:
    """What ``name`` is on this machine: hardware seen and the precision trainers use there.

    ``precision`` is "bf16" on CUDA GPUs that support it and on XLA devices, else "fp32";
    ``torch`` and ``torch_threads`` are reported when torch is in use.

    >>> d = describe_device("cpu")
    >>> d["name"], d["cpu_count"] == os.cpu_count()
    ('cpu', True)
    """
    info: dict[str, Any] = {
        "name": name,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "precision": "fp32",
    }
    # A CPU description must not import torch (seconds) for an XGBoost job that never uses it.
    torch = sys.modules.get("torch") if name == "cpu" else _torch()
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    if name == "cpu":
        info["hardware"] = platform.processor() or platform.machine()
    elif name == "cuda":
        info["hardware"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
        info["precision"] = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    elif name == "xla":
        xm = _xla_model()
        info["hardware"] = xm.xla_device_hw(xm.xla_device())
        info["precision"] = "bf16"
    elif name == "mps":
        info["hardware"] = "Apple MPS"
    else:
        raise ConfigError(f"cannot describe device {name!r}; expected one of {list(DEVICES)}")
    return info


def xgboost_device(name: str) -> str:
    """The ``device`` argument for XGBoost: "cuda" on a CUDA GPU, "cpu" everywhere else.

    >>> xgboost_device("xla"), xgboost_device("cuda")
    ('cpu', 'cuda')
    """
    return "cuda" if name == "cuda" else "cpu"
