"""`fti init`: a new project directory with commented settings and a small, real example of
definitions (payments, chargebacks, two feature groups, a label, a feature view and a model).

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp()) / "shop"
>>> [p.name for p in init_project(folder)]
['fti.yaml', 'definitions.py']
>>> init_project(folder)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
fti.features.errors.DefinitionError: .../shop already has fti.yaml, definitions.py: ... --force ...
"""

from __future__ import annotations

import os
from pathlib import Path

from fti.features.errors import DefinitionError
from fti.features.project.loader import DEFINITIONS, SETTINGS_FILE

__all__ = ["DEFINITIONS_TEMPLATE", "SETTINGS_TEMPLATE", "init_project"]

SETTINGS_TEMPLATE = """\
# Settings of this fti project. Every key is optional; FTI_* environment variables win over
# this file (FTI_KAFKA__BOOTSTRAP_SERVERS for kafka.bootstrap_servers, and so on).

# Where fti keeps applied definitions, the online and offline stores and the registry.
# A relative path is taken from this directory.
# data_dir: .fti

# kafka:
#   bootstrap_servers: 127.0.0.1:9092   # the embedded broker of `fti broker`, or any Kafka
"""

DEFINITIONS_TEMPLATE = '''\
"""Definitions of this fti project: streams of events, the features computed from them, the
label to learn, the feature view that joins them, point in time, into training data, and the
model that learns it.

`fti plan` shows what changed since the last `fti apply`; `fti apply` records it.
A change to a group's entity, stream, features or aggregations needs a new version=.
"""

from fti.features.project import (
    FeatureGroup,
    FeatureView,
    Field,
    Label,
    Model,
    Retrain,
    Stream,
    agg,
)

payments = Stream(
    "payments",
    topic="payments",
    event_time="ts",
    id="payment_id",
    key="merchant_id",
    fields=[
        Field("payment_id", "string"),
        Field("merchant_id", "string"),
        Field("customer_id", "string"),
        Field("amount", "float", min=0),
        Field("method", "string", values=("bank", "wallet", "voucher")),
        Field("ts", "timestamp"),
    ],
)

chargebacks = Stream(
    "chargebacks",
    topic="chargebacks",
    event_time="ts",
    id="payment_id",
    key="merchant_id",
    fields=[
        Field("payment_id", "string"),
        Field("merchant_id", "string"),
        Field("customer_id", "string"),
        Field("disputed", "int", min=0, max=1),
        Field("ts", "timestamp"),
    ],
)

merchant_activity = FeatureGroup(
    "merchant_activity",
    entity="merchant_id",
    stream=payments,
    aggregations=[
        agg.count(window="15m"),
        agg.mean("amount", window="1h"),
        agg.sum("amount", window="1h"),
    ],
    description="How busy a merchant is and how much it takes.",
)

customer_activity = FeatureGroup(
    "customer_activity",
    entity="customer_id",
    stream=payments,
    aggregations=[
        agg.count(window="1h"),
        agg.max("amount", window="1d"),
        agg.distinct_count("method", window="1d"),
        agg.time_since_previous(),
    ],
    description="How a customer pays.",
)

chargeback = Label("chargeback", stream=chargebacks, value="disputed")

payment_risk = FeatureView(
    "payment_risk", chargeback, [merchant_activity, customer_activity], ttl="7d"
)

risk_model = Model(
    "payment-risk",
    view=payment_risk,
    task="binary",
    trainer="xgboost",
    params={"n_estimators": 100, "max_depth": 3, "learning_rate": 0.2},
    gates={"roc_auc": 0.7},
    retrain=Retrain(monitor=["amount"], volume_labels=5000),
    description="The chance that a payment ends in a chargeback.",
)
'''


def init_project(directory: Path | str, force: bool = False) -> list[Path]:
    """Write `fti.yaml` and `definitions.py` into `directory` (made when missing) and return
    their paths. Existing files are overwritten only with `force`; otherwise, or when the
    directory holds a `definitions/` package, a `DefinitionError` names what is there.
    """
    folder = Path(directory)
    files = {folder / SETTINGS_FILE: SETTINGS_TEMPLATE,
             folder / f"{DEFINITIONS}.py": DEFINITIONS_TEMPLATE}
    if (folder / DEFINITIONS).is_dir():
        raise DefinitionError(f"{folder} already has a {DEFINITIONS}/ package; a project has "
                              f"either it or {DEFINITIONS}.py: init another directory")
    existing = [p.name for p in files if p.exists()]
    if existing and not force:
        raise DefinitionError(f"{folder} already has {', '.join(existing)}: keep them, or pass "
                              "--force to overwrite them with the example")
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    return list(files)
