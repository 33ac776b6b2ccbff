"""Feature vectors for live scoring, computed exactly as the feature flow computes them.

The online store keeps each card's 24 h window; the vector for a new transaction is built from
the window entries that precede it plus the transaction itself, so training rows (written by
the feature flow) and serving rows agree whether or not the feature flow has seen it yet.

>>> from datetime import datetime, timezone
>>> from fti.events import Transaction
>>> tx = Transaction(tx_id="t1", card_id="c1", merchant_id="m", amount=20.0, currency="EUR",
...                  country="DE", channel="online", ts=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> vector = feature_vector(tx, None)
>>> dict(zip(FEATURE_COLUMNS, vector))["tx_count_1h"]
1.0
"""

from __future__ import annotations

from fti.connectors.online import OnlineRow
from fti.events import Transaction
from fti.features.definitions import FEATURE_COLUMNS
from fti.features.windows import WindowEntry, event_features, past_of, window_features


def feature_vector(tx: Transaction, online: OnlineRow | None) -> list[float]:
    """Model inputs for `tx`, in `FEATURE_COLUMNS` order, from its card's online row."""
    window = online.window if online is not None else []  # plain lists, read by position
    entry = WindowEntry(tx.ts.timestamp(), tx.amount, tx.country, tx.tx_id)
    values = {
        **event_features(tx.amount, tx.channel, tx.ts),
        **window_features(past_of(window, entry), entry),
    }
    return [values[name] for name in FEATURE_COLUMNS]
