"""Loading a project from real files: what is collected, fresh imports, and error messages."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from fti.features.errors import DefinitionError
from fti.features.project.declare import FeatureGroup
from fti.features.project.fields import Stream
from fti.features.project.loader import definitions_path, load_project
from fti.features.project.scaffold import init_project

HEADER = """\
from fti.features.project import *
payments = Stream("payments", topic="payments", event_time="ts", id="payment_id",
                  fields=[Field("payment_id"), Field("merchant_id"), Field("customer_id"),
                          Field("amount", "float", min=0), Field("method"),
                          Field("ts", "timestamp")])
"""


def write(folder: Path, name: str, text: str) -> Path:
    """Write a file of the project (dedented), making its folders."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_error(folder: Path) -> str:
    """The message of the DefinitionError that loading the project raises."""
    with pytest.raises(DefinitionError) as info:
        load_project(folder)
    return str(info.value)


def test_the_scaffolded_example_loads(tmp_path: Path) -> None:
    init_project(tmp_path)
    project = load_project(tmp_path)
    assert list(project.streams) == ["chargebacks", "payments"]
    assert list(project.groups) == ["customer_activity", "merchant_activity"]
    assert list(project.labels) == ["chargeback"]
    assert list(project.views) == ["payment_risk"]
    assert list(project.models) == ["payment-risk"]
    assert project.groups["merchant_activity"].feature_names() == [
        "count_15m", "amount_mean_1h", "amount_sum_1h"]
    assert project.directory == tmp_path.resolve()
    assert project.settings_file == tmp_path.resolve() / "fti.yaml"


def test_referenced_definitions_are_collected(tmp_path: Path) -> None:
    # Only the view has a global name: its label, groups and their streams come with it.
    write(tmp_path, "definitions.py", HEADER + """
view = FeatureView(
    "risk",
    Label("fraud", Stream("chargebacks", topic="cb", event_time="ts",
                          fields=[Field("merchant_id"), Field("y", "int"),
                                  Field("ts", "timestamp")]), value="y"),
    [FeatureGroup("merchant", entity="merchant_id", stream=payments,
                  aggregations=[agg.count(window="1h")])])
del payments
""")
    project = load_project(tmp_path)
    assert sorted(project.streams) == ["chargebacks", "payments"]
    assert list(project.groups) == ["merchant"]
    assert list(project.labels) == ["fraud"]


def test_definitions_in_lists_and_dicts_are_collected(tmp_path: Path) -> None:
    write(tmp_path, "definitions.py", HEADER + """
groups = [FeatureGroup(f"by_{e}", entity=e, stream=payments, aggregations=[agg.count(window="1h")])
          for e in ("merchant_id", "customer_id")]
""")
    assert list(load_project(tmp_path).groups) == ["by_customer_id", "by_merchant_id"]


def test_a_package_and_its_submodules(tmp_path: Path) -> None:
    write(tmp_path, "definitions/__init__.py", "from .streams import payments\n")
    write(tmp_path, "definitions/streams.py", HEADER)
    write(tmp_path, "definitions/groups/__init__.py", "")
    write(tmp_path, "definitions/groups/merchant.py", """\
        from fti.features.project import FeatureGroup, agg
        from ..streams import payments
        merchant = FeatureGroup("merchant", entity="merchant_id", stream=payments,
                                aggregations=[agg.count(window="1h")])
        """)
    project = load_project(tmp_path)
    assert list(project.streams) == ["payments"]
    assert list(project.groups) == ["merchant"]  # found although nothing imports it


def test_sibling_modules_are_importable_and_forgotten_after(tmp_path: Path) -> None:
    write(tmp_path, "common.py", HEADER)
    write(tmp_path, "definitions.py", """\
        from common import payments
        from fti.features.project import FeatureGroup, agg
        g = FeatureGroup("g", entity="merchant_id", stream=payments,
                         aggregations=[agg.count(window="1h")])
        """)
    path_before = list(sys.path)
    project = load_project(tmp_path)
    assert list(project.streams) == ["payments"]
    assert "common" not in sys.modules
    assert sys.path == path_before


def test_two_projects_with_same_module_names_in_one_process(tmp_path: Path) -> None:
    for name, topic in (("a", "topic_a"), ("b", "topic_b")):
        write(tmp_path / name, "common.py", f"TOPIC = {topic!r}\n")
        write(tmp_path / name, "definitions.py", """\
            from common import TOPIC
            from fti.features.project import Field, Stream
            s = Stream("s", topic=TOPIC, event_time="ts", fields=[Field("ts", "timestamp")])
            """)
    a, b = load_project(tmp_path / "a"), load_project(tmp_path / "b")
    assert (a.streams["s"].topic, b.streams["s"].topic) == ("topic_a", "topic_b")
    assert a.module != b.module


def test_reloading_sees_an_edit_of_the_same_size_in_the_same_second(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as without PYTHONDONTWRITEBYTECODE
    source = HEADER + 'g = FeatureGroup("g", entity="merchant_id", stream=payments, version=1)\n'
    path = write(tmp_path, "definitions.py", source)
    assert load_project(tmp_path).groups["g"].version == 1
    stat = path.stat()
    path.write_text(source.replace("version=1", "version=2"))
    # Same size and mtime: a bytecode cache would not notice the edit.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_project(tmp_path).groups["g"].version == 2
    assert not (tmp_path / "__pycache__").exists()


def test_same_definition_reached_twice_is_not_a_duplicate(tmp_path: Path) -> None:
    write(tmp_path, "definitions.py", HEADER + """
g = FeatureGroup("g", entity="merchant_id", stream=payments)
again = g
copy = Stream("payments", topic="payments", event_time="ts", id="payment_id",
              fields=payments.fields)
""")
    assert list(load_project(tmp_path).streams) == ["payments"]


def test_duplicate_names_name_both_definitions(tmp_path: Path) -> None:
    write(tmp_path, "definitions.py", HEADER + """
refunds = Stream("payments", topic="refunds", event_time="ts", fields=[Field("ts", "timestamp")])
""")
    message = load_error(tmp_path)
    assert message == (
        "two different streams named payments: one in definitions.py (payments), another in "
        "definitions.py (refunds); rename one, or define it once and import it where it is "
        "needed")


def test_duplicate_groups_across_submodules(tmp_path: Path) -> None:
    write(tmp_path, "definitions/__init__.py", "")
    group = """\
        from fti.features.project import FeatureGroup, Field, Stream, agg
        s = Stream("s", topic="s", event_time="ts", fields=[Field("k"), Field("ts", "timestamp")])
        g = FeatureGroup("activity", entity="k", stream=s, aggregations=[agg.count(window="{w}")])
        """
    write(tmp_path, "definitions/one.py", group.replace("{w}", "1h"))
    write(tmp_path, "definitions/two.py", group.replace("{w}", "2h"))
    message = load_error(tmp_path)
    assert "two different groups named activity" in message
    assert "definitions/one.py (g)" in message and "definitions/two.py (g)" in message


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "definitions.py", HEADER + "g = FeatureGroup(\n")
    message = load_error(tmp_path)
    assert message.startswith(f"{path.resolve()}:6: SyntaxError: ")
    assert "never closed" in message
    assert "\n" not in message and "Traceback" not in message


def test_name_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "definitions.py",
                 HEADER + "g = FeatureGroup('g', entity='x', stream=pay)\n")
    assert load_error(tmp_path) == f"{path.resolve()}:6: NameError: name 'pay' is not defined"


def test_error_in_a_sibling_module_names_that_module(tmp_path: Path) -> None:
    helper = write(tmp_path, "helpers.py", "X = 1\nY = 1 / 0\n")
    write(tmp_path, "definitions.py", "import helpers\n")
    assert load_error(tmp_path) == f"{helper.resolve()}:2: ZeroDivisionError: division by zero"
    assert "helpers" not in sys.modules


def test_unknown_field_in_an_aggregation(tmp_path: Path) -> None:
    path = write(tmp_path, "definitions.py", HEADER + """
merchant = FeatureGroup("merchant", entity="merchant_id", stream=payments,
                        aggregations=[agg.mean("amount", window="1h"), agg.sum("amt", window="1h")])
""")
    assert load_error(tmp_path) == (
        f'{path.resolve()}:7: agg.sum("amt") in group merchant: amt is not a field of stream '
        "payments (payment_id, merchant_id, customer_id, amount, method, ts)")


def test_sum_over_a_string_field(tmp_path: Path) -> None:
    path = write(tmp_path, "definitions.py", HEADER + """
merchant = FeatureGroup("merchant", entity="merchant_id", stream=payments,
                        aggregations=[agg.sum("method", window="1h")])
""")
    assert load_error(tmp_path) == (
        f'{path.resolve()}:7: agg.sum("method") in group merchant: method is a string; sum needs a '
        "number (int or float)")


def test_a_failed_load_leaves_no_module_behind(tmp_path: Path) -> None:
    write(tmp_path, "definitions/__init__.py", "from . import streams\n")
    write(tmp_path, "definitions/streams.py", "raise RuntimeError('boom')\n")
    modules = set(sys.modules)
    assert load_error(tmp_path).endswith("streams.py:1: RuntimeError: boom")
    assert set(sys.modules) == modules


def test_no_definitions_says_to_run_fti_init(tmp_path: Path) -> None:
    assert load_error(tmp_path) == (
        f"no definitions in {tmp_path.resolve()}: neither definitions.py nor a definitions/ "
        f"package; run `fti init {tmp_path.resolve()}` to start a project")


def test_both_a_file_and_a_package_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "definitions.py", "")
    write(tmp_path, "definitions/__init__.py", "")
    with pytest.raises(DefinitionError, match="has both definitions.py and definitions/"):
        definitions_path(tmp_path)


def test_an_empty_project_loads_empty(tmp_path: Path) -> None:
    write(tmp_path, "definitions.py", "# nothing yet\n")
    project = load_project(tmp_path)
    assert (project.streams, project.groups, project.labels, project.views) == ({}, {}, {}, {})
    assert project.settings_file is None


def test_loaded_objects_are_the_declared_classes(tmp_path: Path) -> None:
    init_project(tmp_path)
    project = load_project(tmp_path)
    assert all(isinstance(s, Stream) for s in project.streams.values())
    assert all(isinstance(g, FeatureGroup) for g in project.groups.values())
    assert project.groups["merchant_activity"].stream is project.streams["payments"]


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "definitions.py").write_text("# mine\n")
    with pytest.raises(DefinitionError, match=r"already has fti.yaml, definitions.py: .*--force"):
        init_project(tmp_path)
    assert (tmp_path / "definitions.py").read_text() == "# mine\n"
    init_project(tmp_path, force=True)
    assert "payment_risk" in (tmp_path / "definitions.py").read_text()
