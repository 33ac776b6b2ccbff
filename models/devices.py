"""Which device a trainer runs on.

>>> select_device("cpu")
'cpu'
>>> select_device("tpu")
Traceback (most recent call last):
...
fti.errors.ConfigError: training device must be one of ['auto', 'cpu', 'cuda'], got 'tpu'
"""

from __future__ import annotations

import logging

from fti.errors import ConfigError

logger = logging.getLogger(__name__)

#: Devices a trainer can be asked for explicitly; "auto" picks among them.
DEVICES: tuple[str, ...] = ("cpu", "cuda")


def select_device(requested: str) -> str:
    """Resolve ``requested`` to a device: "auto" → "cuda" when torch sees a GPU, else "cpu"."""
    choice = requested.strip().lower()
    if choice == "auto":
        return "cuda" if _cuda_available() else "cpu"
    if choice not in DEVICES:
        raise ConfigError(f"training device must be one of {['auto', *DEVICES]}, got {requested!r}")
    return choice


def _cuda_available() -> bool:
    try:
        import torch  # imported here: slow to import and only needed to probe for a GPU
    except ImportError:
        logger.info("torch is not installed; device auto resolves to cpu")
        return False
    return bool(torch.cuda.is_available())
