"""The fraud example's demo stream for `fti demo`: card transactions and their late labels,
with a little bad input and, from event `drift_at`, a changed fraud pattern."""

from collections.abc import Iterator

from fti.ops.scenario import DemoRecord
from fti.synthetic.transactions import StreamSpec, tx_index_of
from fti.synthetic.transactions import generate as generate_records

STREAMS = {"transaction": "transactions", "label": "labels"}


def generate(count: int, drift_at: int, bad_fraction: float, seed: int) -> Iterator[DemoRecord]:
    """The records to produce, in order: transactions and, when due, their labels."""
    spec = StreamSpec(count=count, drift_at=drift_at, bad_fraction=bad_fraction, seed=seed)
    for r in generate_records(spec):
        yield DemoRecord(STREAMS[r.kind], r.key, r.value, r.index, r.drifted, r.bad)


def index_of(event_id: str) -> int:
    """The position of a generated transaction in the stream."""
    return tx_index_of(event_id)
