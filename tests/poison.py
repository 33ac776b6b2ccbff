"""A fuzz corpus of untrusted payloads, one per class of bad input, for decoders and flows.

Each payload is shaped like the event it poisons where that matters (a transaction whose
`ts` overflows only after conversion to UTC, say), so it reaches the deepest decoder step.
"""

from __future__ import annotations

import json
from typing import Any

_TX: dict[str, Any] = {"tx_id": "poison", "card_id": "card-poison", "merchant_id": "m1",
                       "amount": 12.5, "currency": "EUR", "country": "DE", "channel": "pos",
                       "ts": "2026-01-01T00:00:00Z"}


def _tx(**changes: Any) -> bytes:
    return json.dumps({**_TX, **changes}).encode()


def _raw_tx(field: str, literal: str) -> bytes:
    """A transaction with `field` set to a literal that `json.dumps` would not write."""
    body = json.dumps({**_TX, field: "__HOLE__"})
    return body.replace('"__HOLE__"', literal).encode()


#: Class of bad input → payload. Every decoder must turn each into a rejection.
POISON: dict[str, bytes] = {
    "ts_overflows_after_utc": _tx(ts="0001-01-01T00:00:00+01:00"),
    "ts_overflows_after_utc_max": _tx(ts="9999-12-31T23:59:59-01:00"),
    "ts_epoch_out_of_range": _tx(ts=10**20),
    "ts_epoch_negative": _tx(ts=-1),
    "ts_wrong_type": _tx(ts=[2026]),
    "deep_nesting": b'{"tx_id": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "huge_integer": _raw_tx("amount", "1" + "0" * 5000),
    "nan_literal": _raw_tx("amount", "NaN"),
    "infinity_literal": _raw_tx("amount", "-Infinity"),
    "overflowing_float": _raw_tx("amount", "1e400"),
    "invalid_utf8": b'{"tx_id": "\xff\xfe\xfa"}',
    "utf16": json.dumps(_TX).encode("utf-16"),
    "empty": b"",
    "whitespace": b"   ",
    "null": b"null",
    "list": b"[1, 2, 3]",
    "string": b'"a transaction"',
    "number": b"42",
    "wrong_field_types": _tx(amount="12.5", tx_id=7, card_id=None),
    "missing_fields": b'{"tx_id": "poison"}',
    "truncated": _tx()[:-7],
    "nul_bytes": b"\x00" * 64,
    "long_key_text": _tx(tx_id="x" * 100_000),
}

#: Payloads too large to produce through a default client (over 1 MB); decoders only.
OVERSIZE = b'{"tx_id": "' + b"x" * (2 << 20) + b'"}'
