"""The model registry: immutable versions, aliases, approvals and a promotion history.

`ModelRegistry` (in `model_registry`) is the front door; `store` reads and writes any
pyarrow filesystem, `versions` stages and publishes version folders, `metadata` describes
a version, `state` holds aliases and approvals, `history` the append-only log, `diff`
compares two versions.
"""

from fti.models.registry.history import CHALLENGER, CHAMPION, HistoryEntry
from fti.models.registry.metadata import (
    METADATA_FILE,
    Approval,
    GateRecord,
    Lineage,
    ModelVersion,
    Signature,
    check_name,
    promotion_problems,
    sha256_file,
)
from fti.models.registry.model_registry import ModelRegistry
from fti.models.registry.state import ALIASES_FILE, APPROVALS_FILE

__all__ = [
    "ALIASES_FILE", "APPROVALS_FILE", "CHALLENGER", "CHAMPION", "METADATA_FILE", "Approval",
    "GateRecord", "HistoryEntry", "Lineage", "ModelRegistry", "ModelVersion", "Signature",
    "check_name", "promotion_problems", "sha256_file",
]
