"""Bias slices of models/slices.py and the slice gate of models/gates.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from fti.errors import FtiError
from fti.models.evaluation.gates import check_gates
from fti.models.evaluation.slices import (
    MISSING,
    SliceReport,
    evaluate_slices,
    largest_gap,
)

COUNTRIES = ("DE", "FR", "IT", "ES")
Data = tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]
Planted = tuple[SliceReport, np.ndarray, np.ndarray]


def _planted(seed: int = 0, rows: int = 2000) -> Data:
    """Scores that catch fraud everywhere except in FR, where most fraud scores low."""
    rng = np.random.default_rng(seed)
    country = rng.choice(COUNTRIES, rows)
    y = (rng.random(rows) < 0.2).astype(int)
    scores = np.where(y == 1, rng.uniform(0.6, 1.0, rows), rng.uniform(0.0, 0.45, rows))
    missed = (country == "FR") & (y == 1) & (rng.random(rows) < 0.6)
    scores[missed] = rng.uniform(0.0, 0.4, int(missed.sum()))
    country[:12] = "LU"  # a tiny country: below min_rows
    y[:12], scores[:12] = 1, 0.1  # every LU fraud is missed, but 12 rows prove nothing
    gender = rng.choice(np.array(["female", "male"]), rows)  # unrelated to the scores
    return {"country": country, "gender": gender}, y, scores


@pytest.fixture
def planted() -> Planted:
    columns, y, scores = _planted()
    return evaluate_slices(columns, y, scores, ["country", "gender"], threshold=0.5), y, scores


def test_planted_country_gap_is_the_largest(planted: Planted) -> None:
    report = planted[0]
    gap = largest_gap(report, "recall")
    assert gap is not None
    metric, column, worst, best, size = gap[:5]
    assert (metric, column, worst) == ("recall", "country", "FR")
    assert best in {"DE", "IT", "ES"} and size > 0.4
    assert gap.worst_value == pytest.approx(
        next(m.recall for m in report.for_column("country") if m.value == "FR")
    )
    by_gender = [m.recall for m in report.for_column("gender")]
    assert max(by_gender) - min(by_gender) < size  # synthetic gender has no planted gap


def test_min_rows_is_respected(planted: Planted) -> None:
    report = planted[0]
    assert "LU" not in {m.value for m in report.slices}
    skipped = {(m.column, m.value): m.rows for m in report.skipped}
    assert skipped == {("country", "LU"): 12}
    assert largest_gap(report, "recall").worst == "FR"  # not LU, whose recall is 0
    columns, y, scores = _planted()
    everything = evaluate_slices(columns, y, scores, ["country"], min_rows=1)
    assert largest_gap(everything, "recall").worst == "LU"


def test_slice_counts_add_up(planted: Planted) -> None:
    report, y, _ = planted
    for column in report.columns:
        slices = [m for m in (*report.slices, *report.skipped) if m.column == column]
        assert sum(m.rows for m in slices) == len(y)
        assert sum(m.positives for m in slices) == int(y.sum())


def test_false_positive_rate_gap_treats_lower_as_better() -> None:
    y = np.array([0] * 40 + [1] * 10 + [0] * 40 + [1] * 10)
    scores = np.r_[np.full(40, 0.9), np.full(10, 0.9), np.full(40, 0.1), np.full(10, 0.9)]
    region = np.array(["north"] * 50 + ["south"] * 50)
    report = evaluate_slices({"region": region}, y, scores)
    gap = largest_gap(report, "false_positive_rate")
    assert (gap.worst, gap.best, gap.worst_value, gap.best_value) == ("north", "south", 1.0, 0.0)


def test_numeric_columns_are_cut_into_quantile_bins() -> None:
    rng = np.random.default_rng(3)
    amount = rng.exponential(50.0, 400)
    amount[:5] = np.nan
    y = rng.integers(0, 2, 400)
    report = evaluate_slices({"amount": amount}, y, rng.random(400), min_rows=1, bins=4)
    values = [m.value for m in report.slices]
    assert len(values) == 5 and values[-1] == MISSING
    assert values[0].startswith("[") and values[3].endswith("]")
    assert [m.rows for m in report.slices] == [99, 98, 99, 99, 5]


def test_few_valued_numbers_stay_categorical() -> None:
    flag = np.array([0.0, 1.0] * 50)
    report = evaluate_slices({"is_new_country": flag}, [0, 1] * 50, np.linspace(0, 1, 100))
    assert [m.value for m in report.slices] == ["0", "1"]


def test_pyarrow_table_with_nulls_and_undefined_metrics() -> None:
    table = pa.table({"country": ["DE"] * 40 + [None] * 40})
    y = np.r_[np.zeros(40, int), np.r_[np.ones(20, int), np.zeros(20, int)]]
    report = evaluate_slices(table, y, np.linspace(0, 1, 80))
    de, missing = report.slices
    assert (de.value, missing.value) == ("DE", MISSING)
    assert de.positives == 0 and de.recall is None and de.roc_auc is None and de.f1 is None
    assert largest_gap(report, "recall") is None  # only one slice with recall defined


def test_errors_name_the_problem() -> None:
    with pytest.raises(FtiError, match="'age' is not among the helper columns"):
        evaluate_slices({"country": ["DE"]}, [1], [0.5], ["age"])
    with pytest.raises(FtiError, match="aligned row by row"):
        evaluate_slices({"country": ["DE", "FR"]}, [1], [0.5])
    report = evaluate_slices({"country": ["DE"]}, [1], [0.5], min_rows=1)
    with pytest.raises(FtiError, match="slice metric must be one of"):
        largest_gap(report, "accuracy")


def test_report_renders_and_serialises(planted: Planted) -> None:
    report = planted[0]
    text = report.to_markdown("recall")
    assert "| country | FR |" in text and "Not scored (fewer than 30 rows): country=LU (12)" in text
    assert "Largest recall gap" in text and "worst slice `FR`" in text
    data = report.to_dict()
    assert data["min_rows"] == 30 and data["skipped"] == [
        {"column": "country", "value": "LU", "rows": 12}
    ]


def test_slice_gate_fails_with_a_readable_reason(planted: Planted) -> None:
    report = planted[0]
    gap = largest_gap(report, "recall")
    result = check_gates({"roc_auc": 0.95}, None, 0.75, 0.02, report, max_slice_gap=0.1)
    assert not result.passed and len(result.reasons) == 1
    reason = result.reasons[0]
    assert reason.startswith(f"recall gap {gap.gap:.4g} across country > max 0.1")
    assert "worst slice 'FR'" in reason and f"best slice '{gap.best}'" in reason


def test_slice_gate_passes_within_the_bound(planted: Planted) -> None:
    report = planted[0]
    assert check_gates({"roc_auc": 0.95}, None, 0.75, 0.02, report, max_slice_gap=0.9).passed
    columns, y, scores = _planted()
    by_gender = evaluate_slices(columns, y, scores, ["gender"])
    assert check_gates({"roc_auc": 0.95}, None, 0.75, 0.02, by_gender, max_slice_gap=0.1).passed


def test_slice_gate_is_off_by_default_and_fails_closed_without_a_report(
    planted: Planted,
) -> None:
    report = planted[0]
    assert check_gates({"roc_auc": 0.95}, None, 0.75, 0.02).passed
    assert check_gates({"roc_auc": 0.95}, None, 0.75, 0.02, slice_report=report).passed
    result = check_gates({"roc_auc": 0.95}, None, 0.75, 0.02, max_slice_gap=0.1)
    assert not result.passed and "no slice report was given" in result.reasons[0]


def test_slice_gate_on_false_positive_rate() -> None:
    y = np.array([0] * 40 + [1] * 10 + [0] * 40 + [1] * 10)
    scores = np.r_[np.full(40, 0.9), np.full(10, 0.9), np.full(40, 0.1), np.full(10, 0.9)]
    report = evaluate_slices({"region": ["north"] * 50 + ["south"] * 50}, y, scores)
    result = check_gates({"roc_auc": 0.8}, None, 0.75, 0.02, report, 0.2, "false_positive_rate")
    assert result.reasons == [
        "false_positive_rate gap 1 across region > max 0.2: worst slice 'north' 1, "
        "best slice 'south' 0 (lower is better)"
    ]
