"""Plans between two versions of a project on disk, and the applied-definitions store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fti.features.errors import DefinitionError
from fti.features.project.applied import applied, apply, check_applied, definitions_dir
from fti.features.project.loader import Project, load_project
from fti.features.project.plan import plan, project_spec
from fti.features.project.scaffold import DEFINITIONS_TEMPLATE

EXAMPLE = DEFINITIONS_TEMPLATE


def edit(text: str, *replacements: tuple[str, str]) -> str:
    """`text` with each (old, new) replaced; every old must be there."""
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


def load(folder: Path, source: str) -> Project:
    """Write `source` as the project's definitions.py and load it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "definitions.py").write_text(source)
    return load_project(folder)


def plan_between(tmp_path: Path, before: str, after: str):  # noqa: ANN201
    """The plan from a project applied as `before` to the same project edited to `after`."""
    old = project_spec(load(tmp_path / "project", before))
    return plan(load(tmp_path / "project", after), old)


ADD_STD = ('        agg.sum("amount", window="1h"),\n',
           '        agg.sum("amount", window="1h"),\n        agg.std("amount", window="1h"),\n')
MERCHANT_V2 = ('    description="How busy', '    version=2,\n    description="How busy')
VIEW_V2 = ('ttl="7d"\n)', 'ttl="7d", version=2\n)')


def test_everything_is_new_when_nothing_is_applied(tmp_path: Path) -> None:
    result = plan(load(tmp_path, EXAMPLE), None)
    assert result.valid and result.has_changes
    assert result.streams.new == ("chargebacks", "payments")
    assert result.groups.new == ("customer_activity", "merchant_activity")
    assert (result.labels.new, result.views.new) == (("chargeback",), ("payment_risk",))
    assert result.models.new == ("payment-risk",)
    assert result.counts() == (7, 0, 0)
    assert result.render().splitlines() == [
        "+ stream chargebacks (topic chargebacks, 5 fields)",
        "+ stream payments (topic payments, 6 fields)",
        "+ group customer_activity v1 (entity customer_id, stream payments, 4 features)",
        "+ group merchant_activity v1 (entity merchant_id, stream payments, 3 features)",
        "+ label chargeback v1 (stream chargebacks, value disputed)",
        "+ view payment_risk v1 (label chargeback, groups merchant_activity, customer_activity, "
        "7 features)",
        "+ model payment-risk v1 (binary on view payment_risk, trainer xgboost)",
        "",
        "Plan: 7 to add, 0 to change, 0 to remove.",
    ]


def test_the_same_project_plans_no_changes(tmp_path: Path) -> None:
    result = plan_between(tmp_path, EXAMPLE, EXAMPLE)
    assert result.valid and not result.has_changes
    assert result.groups.unchanged == ("customer_activity", "merchant_activity")
    assert result.render() == "No changes."


def test_project_spec_is_canonical_json(tmp_path: Path) -> None:
    spec = project_spec(load(tmp_path, EXAMPLE))
    assert list(spec) == ["streams", "groups", "labels", "views", "models"]
    assert list(spec["groups"]) == ["customer_activity", "merchant_activity"]
    assert json.loads(json.dumps(spec)) == spec
    merchant = spec["groups"]["merchant_activity"]
    assert list(merchant) == sorted(merchant)
    assert merchant["ttl"] == 604800.0 and merchant["entity"] == "merchant_id"


def test_non_breaking_group_changes_need_no_version(tmp_path: Path) -> None:
    after = edit(EXAMPLE, ('    description="How a customer pays.",',
                           '    ttl="1d",\n    online=False,\n    allowed_lateness="1m",\n'
                           '    tags={"amount_max_1d": ["finance"]},\n'
                           '    description="How a customer pays money.",'))
    result = plan_between(tmp_path, EXAMPLE, after)
    assert result.valid, result.errors
    assert result.groups.changed == {"customer_activity": (
        "allowed_lateness: 300 -> 60",
        "description: How a customer pays. -> How a customer pays money.",
        "online: True -> False",
        "tags: + amount_max_1d: [finance]",
        "ttl: 604800 -> 86400",
    )}
    assert result.groups.unchanged == ("merchant_activity",)
    assert result.render().splitlines()[-1] == "Plan: 0 to add, 1 to change, 0 to remove."


def test_a_new_aggregation_without_a_version_bump_is_refused(tmp_path: Path) -> None:
    result = plan_between(tmp_path, EXAMPLE, edit(EXAMPLE, ADD_STD))
    assert not result.valid
    assert result.groups.changed["merchant_activity"] == ("aggregations: + amount_std_1h",)
    assert result.views.changed["payment_risk"] == (
        "features: + merchant_activity__amount_std_1h",)
    assert result.errors == (
        "group merchant_activity v1: aggregations changed (+ amount_std_1h); this changes the "
        "offline table, so bump version=2",
        "view payment_risk v1: features changed (+ merchant_activity__amount_std_1h); this "
        "changes its training data, so bump version=2",
    )
    with pytest.raises(DefinitionError, match="bump version=2; view payment_risk"):
        result.check()
    rendered = result.render()
    assert "! group merchant_activity v1: aggregations changed" in rendered
    # the model on the view changes too: its inputs gained the feature
    assert "~ model payment-risk v1:" in rendered
    assert rendered.endswith("Plan: 0 to add, 3 to change, 0 to remove; invalid: 2 errors.")


def test_the_same_change_with_version_bumps_is_valid(tmp_path: Path) -> None:
    after = edit(EXAMPLE, ADD_STD, MERCHANT_V2, VIEW_V2)
    result = plan_between(tmp_path, EXAMPLE, after)
    assert result.valid, result.errors
    assert result.groups.changed["merchant_activity"] == (
        "aggregations: + amount_std_1h", "version: 1 -> 2")
    assert "~ group merchant_activity v1 -> v2:" in result.render().splitlines()


def test_changing_a_window_or_the_entity_is_breaking(tmp_path: Path) -> None:
    after = edit(EXAMPLE, ('agg.count(window="15m")', 'agg.count(window="30m")'),
                 ('entity="customer_id"', 'entity="payment_id"'),
                 ('aggregations=[\n        agg.count(window="1h")', 'aggregations=[\n        '
                  'agg.count(window="1h", name="n_1h")'))
    errors = plan_between(tmp_path, EXAMPLE, after).errors
    assert errors[0] == (
        "group customer_activity v1: aggregations changed (+ n_1h, - count_1h), entity changed "
        "(customer_id -> payment_id); this changes the offline table, so bump version=2")
    assert errors[1].startswith("group merchant_activity v1: aggregations changed (+ count_30m, "
                                "- count_15m)")
    assert errors[2] == (
        "view payment_risk v1: features changed (+ merchant_activity__count_30m, "
        "+ customer_activity__n_1h, - merchant_activity__count_15m, - customer_activity__count_1h)"
        "; this changes its training data, so bump version=2")


def test_a_changed_transformation_body_is_breaking(tmp_path: Path) -> None:
    before = edit(EXAMPLE, ("    agg,\n)", "    agg,\n    transformation,\n)"),
                  ("merchant_activity = FeatureGroup(", """@transformation("float")
def big(event):
    return float(event["amount"] > 100)


merchant_activity = FeatureGroup("""),
                  ('    description="How a customer pays.",',
                   '    transformations=[big],\n    description="How a customer pays.",'))
    after = edit(before, ('event["amount"] > 100', 'event["amount"] > 500'))
    result = plan_between(tmp_path, before, after)
    assert result.groups.changed["customer_activity"][0].startswith(
        "transformations: ~ big (source_sha256: ")
    assert result.errors[0].startswith("group customer_activity v1: transformations changed")
    spec = project_spec(load(tmp_path / "again", before))
    assert spec["groups"]["customer_activity"]["transformations"][0]["function"] == (
        "definitions.big")  # the same whichever load imported it
    assert plan_between(tmp_path / "same", before, before).render() == "No changes."


def test_label_value_and_its_stream_fields_are_breaking(tmp_path: Path) -> None:
    after = edit(EXAMPLE, ('        Field("disputed", "int", min=0, max=1),\n',
                           '        Field("disputed", "int", min=0, max=1),\n'
                           '        Field("reason", "string", required=False),\n'))
    result = plan_between(tmp_path, EXAMPLE, after)
    assert result.streams.changed["chargebacks"] == ("fields: + reason",)
    assert result.labels.changed["chargeback"] == ("stream chargebacks: + reason: string",)
    assert result.errors == (
        "label chargeback v1: stream chargebacks changed (+ reason: string); this changes the "
        "label table, so bump version=2",)
    bumped = edit(after, ('value="disputed")', 'value="disputed", version=2)'))
    assert plan_between(tmp_path, EXAMPLE, bumped).valid


def test_stream_rule_changes_are_not_breaking(tmp_path: Path) -> None:
    after = edit(EXAMPLE, ('Field("amount", "float", min=0)', 'Field("amount", "float", min=1)'),
                 ('values=("bank", "wallet", "voucher")',
                  'values=("bank", "wallet", "voucher", "upi")'))
    result = plan_between(tmp_path, EXAMPLE, after)
    assert result.valid
    assert result.streams.changed == {"payments": (
        "fields: ~ amount (min: 0 -> 1), ~ method (values: + upi)",)}
    assert result.groups.changed == {}


def test_a_type_change_of_a_field_a_group_reads_is_breaking(tmp_path: Path) -> None:
    after = edit(EXAMPLE, ('Field("merchant_id", "string"),\n        Field("customer_id", '
                           '"string"),\n        Field("amount"',
                           'Field("merchant_id", "int"),\n        Field("customer_id", '
                           '"string"),\n        Field("amount"'))
    result = plan_between(tmp_path, EXAMPLE, after)
    assert result.groups.changed == {"merchant_activity": (
        "stream payments: merchant_id: string -> int",)}
    assert result.errors == (
        "group merchant_activity v1: stream payments changed (merchant_id: string -> int); this "
        "changes the offline table, so bump version=2",)


def test_removed_and_added_definitions(tmp_path: Path) -> None:
    after = edit(EXAMPLE, ("payment_risk = FeatureView(\n    \"payment_risk\"",
                           "risk = FeatureView(\n    \"risk\""),
                 ("view=payment_risk,", "view=risk,"))
    result = plan_between(tmp_path, EXAMPLE, after)
    assert (result.views.new, result.views.removed) == (("risk",), ("payment_risk",))
    assert result.models.changed["payment-risk"][0] == "view: payment_risk -> risk"
    lines = result.render().splitlines()
    assert "- view payment_risk v1" in lines
    assert lines[-1] == "Plan: 1 to add, 1 to change, 1 to remove."


def test_a_version_never_goes_back(tmp_path: Path) -> None:
    before = edit(EXAMPLE, MERCHANT_V2)
    result = plan_between(tmp_path, before, EXAMPLE)
    assert result.errors == (
        "group merchant_activity: version 2 -> 1; a version never goes back (its data may "
        "differ): use version=3",)


def test_apply_records_versions_only_on_change(tmp_path: Path) -> None:
    data = tmp_path / "data"
    project = load(tmp_path / "p", EXAMPLE)
    assert applied(data) is None
    first = apply(project, data)
    assert (first.version, first.path.name) == (1, "v1.json")
    assert apply(load(tmp_path / "p", EXAMPLE), data) == first
    folder = definitions_dir(data)
    assert (folder / "current").read_text() == "v1\n"
    assert (folder / "v1.sha256").read_text() == f"{first.sha256}  v1.json\n"
    record = json.loads((folder / "v1.json").read_text())
    assert record["version"] == 1 and record["spec"] == project_spec(project)

    edited = load(tmp_path / "p", edit(EXAMPLE, ('ttl="7d"\n)', 'ttl="3d"\n)')))
    second = apply(edited, data)
    assert second.version == 2 and second.sha256 != first.sha256
    assert applied(data) == second
    assert check_applied(load(tmp_path / "p", edit(EXAMPLE, ('ttl="7d"\n)', 'ttl="3d"\n)'))),
                         data) == second


def test_apply_refuses_an_invalid_plan_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    apply(load(tmp_path / "p", EXAMPLE), data)
    breaking = load(tmp_path / "p", edit(EXAMPLE, ADD_STD))
    with pytest.raises(DefinitionError, match="so bump version=2"):
        apply(breaking, data)
    assert sorted(p.name for p in definitions_dir(data).glob("v*")) == ["v1.json", "v1.sha256"]


def test_a_tampered_applied_file_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record = apply(load(tmp_path / "p", EXAMPLE), data)
    record.path.write_text(record.path.read_text().replace("604800", "1"))
    with pytest.raises(DefinitionError) as info:
        applied(data)
    assert str(info.value).startswith(
        f"{record.path} does not match the sha256 recorded in v1.sha256 when it was applied: "
        "it was changed or damaged; restore it, or delete")


def test_version_numbers_are_not_reused_after_starting_over(tmp_path: Path) -> None:
    data = tmp_path / "data"
    apply(load(tmp_path / "p", EXAMPLE), data)
    (definitions_dir(data) / "current").unlink()
    assert applied(data) is None
    assert apply(load(tmp_path / "p", EXAMPLE), data).version == 2


def test_a_missing_applied_file_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record = apply(load(tmp_path / "p", EXAMPLE), data)
    record.path.unlink()
    with pytest.raises(DefinitionError, match=r"current names v1 but .*v1.json is missing"):
        applied(data)


def test_check_applied_says_what_to_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    project = load(tmp_path / "p", EXAMPLE)
    with pytest.raises(DefinitionError, match=r"nothing applied yet in .*: run `fti apply`$"):
        check_applied(project, data)
    apply(project, data)
    assert check_applied(load(tmp_path / "p", EXAMPLE), data).version == 1
    edited = load(tmp_path / "p", edit(EXAMPLE, ('ttl="7d"\n)', 'ttl="3d"\n)')))
    with pytest.raises(DefinitionError) as info:
        check_applied(edited, data)
    assert str(info.value) == ("definitions changed since the last `fti apply` (v1: ~ view "
                               "payment_risk): run `fti plan` then `fti apply`")
