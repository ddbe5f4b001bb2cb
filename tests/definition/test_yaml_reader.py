"""The YAML reader: plain data with positions, YAML 1.2 scalars, and no silent surprises."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tempeh_tui.definition.yaml_reader import PlainFloat, PlainInt, YamlDocument, read_yaml_text
from tempeh_tui.errors import WorkflowError


def read(text: str) -> YamlDocument:
    return read_yaml_text(textwrap.dedent(text).lstrip("\n"), "doc.yaml")


def test_words_that_yaml_1_1_reads_as_booleans_stay_strings() -> None:
    doc = read(
        """
        on: off
        yes: no
        words: [on, off, yes, no, y, n, On, NO]
        """
    )
    assert doc.data == {
        "on": "off",
        "yes": "no",
        "words": ["on", "off", "yes", "no", "y", "n", "On", "NO"],
    }


def test_true_false_and_null_follow_the_yaml_1_2_core_schema() -> None:
    doc = read("values: [true, False, TRUE, null, ~, Null, '', 'true']\n")
    assert doc.data == {"values": [True, False, True, None, None, None, "", "true"]}


def test_a_leading_zero_integer_is_decimal_and_keeps_its_written_text() -> None:
    value = read("zip: 010\n").data["zip"]
    assert isinstance(value, PlainInt)
    assert (value, value.raw) == (10, "010")


def test_a_version_like_float_keeps_its_written_text() -> None:
    value = read("version: 1.10\n").data["version"]
    assert isinstance(value, PlainFloat)
    assert (value, value.raw) == (1.1, "1.10")


def test_yaml_1_2_number_forms_are_read_as_numbers() -> None:
    doc = read("values: [0o17, 0x1f, 1e3, -.5, .inf, -.Inf]\n")
    assert doc.data["values"] == [15, 31, 1000.0, -0.5, math.inf, -math.inf]


def test_sexagesimal_and_underscored_numbers_are_strings_in_yaml_1_2() -> None:
    doc = read("values: [1:20, 1_000, 0b101]\n")
    assert doc.data["values"] == ["1:20", "1_000", "0b101"]


def test_quoted_and_block_scalars_are_always_strings() -> None:
    doc = read(
        """
        a: "010"
        b: '1.10'
        c: |
          true
        d: !!str 8080
        """
    )
    assert doc.data == {"a": "010", "b": "1.10", "c": "true\n", "d": "8080"}


def test_every_key_and_value_remembers_its_line_and_column() -> None:
    doc = read(
        """
        name: shop
        steps:
          - name: build
            needs: [a, b]
        """
    )
    smap = doc.source_map
    assert smap.values[("name",)] == (1, 7)
    assert smap.values[("steps",)] == (3, 3)
    assert smap.values[("steps", 0)] == (3, 5)
    assert smap.keys[("steps", 0, "needs")] == (4, 5)
    assert smap.values[("steps", 0, "needs", 1)] == (4, 16)


def test_a_missing_path_is_located_at_its_nearest_enclosing_value() -> None:
    doc = read(
        """
        steps:
          - name: build
        """
    )
    assert doc.source_map.locate(("steps", 0, "run")) == (2, 5)


def test_a_duplicate_key_is_reported_at_the_second_and_the_first_value_stands() -> None:
    doc = read(
        """
        run: first
        other: 1
        run: second
        """
    )
    assert doc.data["run"] == "first"
    [problem] = doc.problems
    assert (problem.line, problem.col) == (3, 1)
    assert "duplicate key 'run' (first at line 1)" in problem.message


def test_duplicate_keys_in_a_flow_mapping_are_reported_too() -> None:
    doc = read("env: {A: 1, B: 2, A: 3}\n")
    [problem] = doc.problems
    assert (problem.line, problem.col) == (1, 19)
    assert "duplicate key 'A'" in problem.message


def test_merge_keys_fill_in_what_the_mapping_does_not_set() -> None:
    doc = read(
        """
        base: &base {timeout: 5m, retry: 3}
        step:
          <<: *base
          retry: 5
        """
    )
    assert doc.data["step"] == {"timeout": "5m", "retry": 5}
    assert doc.problems == []


def test_small_aliases_are_expanded() -> None:
    doc = read(
        """
        regions: &regions [eu, us]
        again: *regions
        """
    )
    assert doc.data["again"] == ["eu", "us"]


def test_a_syntax_error_names_its_line_and_column() -> None:
    with pytest.raises(WorkflowError) as caught:
        read(
            """
            name: shop
            steps: [a, b
            other: 1
            """
        )
    [problem] = caught.value.problems
    assert (problem.source, problem.line) == ("doc.yaml", 3)
    assert problem.message.startswith("YAML syntax error:")


def test_a_collection_as_a_mapping_key_is_refused() -> None:
    with pytest.raises(WorkflowError) as caught:
        read("? [a, b]\n: value\n")
    [problem] = caught.value.problems
    assert "a mapping key must be text" in problem.message


def test_an_unknown_alias_is_refused_with_its_position() -> None:
    with pytest.raises(WorkflowError) as caught:
        read("a: *nowhere\n")
    [problem] = caught.value.problems
    assert (problem.line, problem.col) == (1, 4)
    assert "nowhere" in problem.message


# --- agreement with PyYAML where YAML 1.1 and 1.2 agree -------------------------------------

_PLAIN_TEXT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzAEINOSTYZ0123456789 -_/:.,éßøÆ日本\u00a0", max_size=12
).filter(lambda s: not s[:1].isdigit() and s[:1] not in {".", "-", "+", ":"})
_KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_SCALARS = (
    _PLAIN_TEXT
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.booleans()
    | st.none()
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(data=st.dictionaries(_KEYS, _DOCUMENTS, max_size=5), flow=st.booleans())
def test_the_reader_agrees_with_pyyaml_on_ordinary_documents(
    data: dict[str, Any], flow: bool
) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True, sort_keys=False)
    assert read_yaml_text(text).data == yaml.safe_load(text) == data
