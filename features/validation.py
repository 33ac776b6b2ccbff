"""Per-group validation rules for incoming rows, and the policy that applies them.

Each rule has a bounded ``name`` (``range:amount``, fit for a metric label) and a
``check(row, now)`` that returns ``None`` or a message naming the value, what is allowed and
the rule. Value rules skip a missing or null value (that is `NotNull`'s job); `Range` refuses
NaN and infinities. A `RuleSet` applies rules under a policy: ``strict`` rejects a row that
breaks any rule (the flow sends it to the DLQ with `Verdict.reason`), ``warn`` keeps the row
and reports the violations so the flow can count them.

>>> from datetime import datetime, timezone
>>> now = datetime(2026, 1, 2, tzinfo=timezone.utc)
>>> Range("amount", 0, None).check({"amount": -3.2}, now)
'amount must be >= 0, got -3.2 (rule range:amount)'
>>> rules = RuleSet([NotNull("amount"), Range("amount", 0, 100)], policy="warn")
>>> verdict = rules.evaluate({"amount": 250.0}, now)
>>> verdict.ok, verdict.rules
(True, ('range:amount',))
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

from fti.errors import EventError
from fti.events import Transaction, decode_transaction, to_utc_datetime
from fti.features.errors import RuleError
from fti.features.groups import FeatureGroup
from fti.settings import ValidationSettings

Policy = Literal["strict", "warn"]


class Rule(Protocol):
    """What every validation rule offers."""

    @property
    def name(self) -> str:
        """Bounded, stable name: ``kind:column``."""
        ...

    @property
    def column(self) -> str:
        """The column the rule reads."""
        ...

    def check(self, row: Mapping[str, Any], now: datetime) -> str | None:
        """``None`` if ``row`` passes, else a message naming the value, the rule and the limit."""
        ...


def _num(x: float) -> str:
    """Short text for a number that still reads back exactly: 1e+06, 0, -3.2."""
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def _same(a: Any, b: Any) -> bool:
    """Equal and both or neither a bool (``True == 1`` in Python, not here)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise RuleError(f"now must be timezone-aware (e.g. datetime.now(UTC)), got {now!r}")
    return now


@dataclass(frozen=True)
class _FeatureRule:
    """A rule on one feature, named ``<kind>:<feature>``."""

    kind: ClassVar[str]
    feature: str

    @property
    def name(self) -> str:
        """``<kind>:<feature>``, e.g. ``range:amount``."""
        return f"{self.kind}:{self.feature}"

    @property
    def column(self) -> str:
        """The feature checked."""
        return self.feature


@dataclass(frozen=True)
class Range(_FeatureRule):
    """A finite number within ``[min, max]``; either bound may be ``None`` (open).

    >>> Range("amount", 0, 1e6).check({"amount": float("nan")}, None)
    'amount must be a finite number within [0, 1e+06], got nan (rule range:amount)'
    """

    kind = "range"
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise RuleError(f"rule {self.name}: min {self.min} is greater than max {self.max}")

    def _allowed(self) -> str:
        if self.min is not None and self.max is not None:
            return f"within [{_num(self.min)}, {_num(self.max)}]"
        if self.min is not None:
            return f">= {_num(self.min)}"
        return "" if self.max is None else f"<= {_num(self.max)}"

    def check(self, row: Mapping[str, Any], now: datetime | None) -> str | None:
        """A message if the value is not a number, not finite or out of bounds."""
        value = row.get(self.feature)
        if value is None:
            return None
        if type(value) is float and self.min is not None and self.max is not None:
            if self.min <= value <= self.max:  # NaN fails both comparisons
                return None  # the hot path: every valid event takes it
        allowed = self._allowed()
        # Concrete types first: an isinstance check against the numbers ABC is slow and this
        # runs for every event.
        if type(value) is bool or not (
            type(value) in (float, int) or isinstance(value, numbers.Real)
        ):
            problem = f"a number {allowed}".rstrip()
            got = f"{type(value).__name__} {value!r}"
        elif not math.isfinite(value):
            problem, got = f"a finite number {allowed}".rstrip(), _num(value)
        elif (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            problem, got = allowed, _num(value)
        else:
            return None
        return f"{self.feature} must be {problem}, got {got} (rule {self.name})"


@dataclass(frozen=True)
class NotNull(_FeatureRule):
    """The value is present and not ``None`` (NaN is a value: `Range` refuses it).

    >>> NotNull("ts").check({}, None)
    'ts must not be null, got a missing value (rule not_null:ts)'
    """

    kind = "not_null"

    def check(self, row: Mapping[str, Any], now: datetime | None) -> str | None:
        """A message if the value is missing or ``None``."""
        if self.feature not in row:
            return f"{self.feature} must not be null, got a missing value (rule {self.name})"
        if row[self.feature] is None:
            return f"{self.feature} must not be null, got None (rule {self.name})"
        return None


@dataclass(frozen=True)
class AllowedValues(_FeatureRule):
    """The value is one of ``values`` (kept in the given order for messages).

    >>> AllowedValues("channel", ("pos", "online")).check({"channel": "atm"}, None)
    "channel must be one of ['pos', 'online'], got 'atm' (rule allowed_values:channel)"
    """

    kind = "allowed_values"
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise RuleError(f"rule {self.name}: values must not be empty")

    def check(self, row: Mapping[str, Any], now: datetime | None) -> str | None:
        """A message if the value is not one of the allowed values."""
        value = row.get(self.feature)
        if value is None or (type(value) is str and value in self.values):
            return None  # the common case (text categories) without the generic scan
        if any(_same(value, v) for v in self.values):
            return None
        allowed = list(self.values)
        return f"{self.feature} must be one of {allowed}, got {value!r} (rule {self.name})"


@dataclass(frozen=True)
class MaxEventTimeSkew:
    """The event time (RFC 3339, epoch ms or aware datetime) is at most ``seconds`` after now.

    >>> from datetime import datetime, timezone
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> MaxEventTimeSkew(60, "ts").check({"ts": "2026-01-01T00:01:30Z"}, now)
    'ts must be at most 60s after now, got 90s after now: 2026-01-01T00:01:30+00:00 \
(rule max_event_time_skew:ts)'
    """

    seconds: float
    field: str = "event_time"

    def __post_init__(self) -> None:
        if not self.seconds >= 0:
            raise RuleError(f"rule {self.name}: seconds must be >= 0, got {self.seconds}")

    @property
    def name(self) -> str:
        """``max_event_time_skew:<field>``."""
        return f"max_event_time_skew:{self.field}"

    @property
    def column(self) -> str:
        """The event-time column checked."""
        return self.field

    def check(self, row: Mapping[str, Any], now: datetime) -> str | None:
        """A message if the event time is unreadable or too far in the future of ``now``."""
        value = row.get(self.field)
        if value is None:
            return None
        try:
            ts = to_utc_datetime(value)
        except ValueError as ex:
            return f"{self.field} must be an event time, got {value!r}: {ex} (rule {self.name})"
        if ts <= _aware(now) + timedelta(seconds=self.seconds):
            return None
        return (
            f"{self.field} must be at most {_num(self.seconds)}s after now, got "
            f"{(ts - now).total_seconds():.0f}s "
            f"after now: {ts.isoformat()} (rule {self.name})"
        )


@dataclass(frozen=True)
class Violation:
    """One broken rule: its name and the message for the DLQ or the log."""

    rule: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """Whether to write the row (``ok``) and every rule it broke."""

    ok: bool
    violations: list[Violation] = field(default_factory=list)

    @property
    def rules(self) -> tuple[str, ...]:
        """Names of the broken rules, for counting in a metric."""
        return tuple(v.rule for v in self.violations)

    @property
    def reason(self) -> str:
        """All messages in one line: the ``error`` of a DLQ record."""
        return "; ".join(v.message for v in self.violations)


@dataclass(frozen=True)
class RuleSet:
    """Rules applied together under a policy: ``strict`` rejects, ``warn`` reports."""

    rules: tuple[Rule, ...]
    policy: Policy = "strict"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        if self.policy not in ("strict", "warn"):
            raise RuleError(f"policy must be 'strict' or 'warn', got {self.policy!r}")
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise RuleError(f"rule names must be unique in a rule set, repeated: {twice}")

    def evaluate(self, row: Mapping[str, Any], now: datetime) -> Verdict:
        """Check every rule; ``ok`` is False only under ``strict`` with a violation."""
        _aware(now)
        violations = []
        for rule in self.rules:
            message = rule.check(row, now)
            if message is not None:
                violations.append(Violation(rule.name, message))
        return Verdict(ok=self.policy == "warn" or not violations, violations=violations)

    def enforce(self, row: Mapping[str, Any], now: datetime) -> Verdict:
        """`evaluate`, raising `EventError` with `Verdict.reason` when the row is rejected.

        The flows already route `EventError` to the DLQ, so the DLQ record names the rule.
        """
        verdict = self.evaluate(row, now)
        if not verdict.ok:
            raise EventError(verdict.reason)
        return verdict

    def check_group(self, group: FeatureGroup) -> None:
        """Refuse rules that read a column ``group`` does not have, naming rule and column."""
        columns = group.columns()
        missing = [f"{r.name} reads {r.column!r}" for r in self.rules if r.column not in columns]
        if missing:
            raise RuleError(
                f"rules do not fit feature group {group.name!r} v{group.version}: "
                f"{'; '.join(missing)}; its columns are {list(columns)}"
            )


def rules_for_transactions(settings: ValidationSettings, policy: Policy = "strict") -> RuleSet:
    """The business rules of `parse_transaction` as a `RuleSet` on raw rows.

    Amount present, finite and within [0, max_amount]; currency and channel allowed; ``ts``
    at most ``max_future_skew_s`` after now. (Field types and lengths stay with pydantic.)

    >>> [r.name for r in rules_for_transactions(ValidationSettings()).rules][-2:]
    ['allowed_values:channel', 'max_event_time_skew:ts']
    """
    not_null: Iterable[Rule] = (NotNull(c) for c in ("amount", "currency", "channel", "ts"))
    return RuleSet(
        rules=(
            *not_null,
            Range("amount", 0.0, settings.max_amount),
            AllowedValues("currency", settings.currencies),
            AllowedValues("channel", settings.channels),
            MaxEventTimeSkew(settings.max_future_skew_s, field="ts"),
        ),
        policy=policy,
    )


@functools.lru_cache(maxsize=16)
def transaction_rules(settings: ValidationSettings, policy: Policy = "strict") -> RuleSet:
    """`rules_for_transactions`, built once per settings (rule sets are immutable)."""
    return rules_for_transactions(settings, policy)


def parse_transaction(
    raw: bytes | str, rules: ValidationSettings, now: datetime | None = None
) -> Transaction:
    """Decode a raw transaction and enforce the business rules (strictly); raise `EventError`
    naming the rule it broke.

    >>> from datetime import timezone
    >>> raw = b'{"tx_id":"t1","card_id":"c1","merchant_id":"m1","amount":-1,"currency":"EUR",'
    >>> raw += b'"country":"DE","channel":"pos","ts":"2026-01-01T00:00:00Z"}'
    >>> parse_transaction(raw, ValidationSettings(), now=datetime(2026, 1, 2, tzinfo=timezone.utc))
    Traceback (most recent call last):
    ...
    fti.errors.EventError: ...
    """
    tx = decode_transaction(raw)
    transaction_rules(rules, "strict").enforce(tx.model_dump(), now or datetime.now(UTC))
    return tx
