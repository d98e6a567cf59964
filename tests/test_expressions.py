"""Tests for airflow_kfx.expressions: KFP CEL conditions and parameter selectors.

Expected outcomes follow kubeflow/pipelines backend/src/v2/expression/expression_test.go
and the expressions the KFP SDK compiler emits (see the shared corpus).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_kfx.exceptions import KfxError
from airflow_kfx.expressions import (
    ExpressionError,
    apply_selector,
    check_expression,
    evaluate_condition,
    value_to_text,
)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "kfp-corpus"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _walk(node: Any, conditions: list[str], selectors: list[str]) -> None:
    if isinstance(node, dict):
        policy = node.get("triggerPolicy")
        if isinstance(policy, dict) and isinstance(policy.get("condition"), str):
            conditions.append(policy["condition"])
        if isinstance(node.get("parameterExpressionSelector"), str):
            selectors.append(node["parameterExpressionSelector"])
        for child in node.values():
            _walk(child, conditions, selectors)
    elif isinstance(node, list):
        for child in node:
            _walk(child, conditions, selectors)


def _corpus_files() -> Iterator[Path]:
    for pattern in ("*.yaml", "*.json"):
        yield from sorted(CORPUS.rglob(pattern))


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no KFP corpus at {CORPUS}")
def test_every_corpus_expression_parses() -> None:
    conditions: list[str] = []
    selectors: list[str] = []
    files = skipped = 0
    for path in _corpus_files():
        try:
            docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader))
        except (yaml.YAMLError, UnicodeDecodeError):
            skipped += 1
            continue
        files += 1
        for doc in docs:
            _walk(doc, conditions, selectors)
    print(
        f"\n{files} corpus files ({skipped} unparsable, skipped): "
        f"{len(conditions)} conditions ({len(set(conditions))} distinct), "
        f"{len(selectors)} selectors ({len(set(selectors))} distinct)"
    )
    assert conditions and selectors
    failures = {e: check_expression(e) for e in set(conditions) | set(selectors)}
    assert {e: msg for e, msg in failures.items() if msg} == {}


# --- conditions, as the SDK compiles dsl.Condition / dsl.If / Elif / Else -------------

COIN = "inputs.parameter_values['pipelinechannel--flip-coin-op-Output'] == 'heads'"
RANDOM = "int(inputs.parameter_values['pipelinechannel--random-num-Output'])"


@pytest.mark.parametrize("value, expected", [("heads", True), ("tails", False)])
def test_string_equality(value: str, expected: bool) -> None:
    params = {"pipelinechannel--flip-coin-op-Output": value}
    assert evaluate_condition(COIN, params) is expected


# KFP binds every number as a protobuf double; the SDK casts integer channels with int().
@pytest.mark.parametrize("value", ["7", 7, 7.0])
def test_int_cast_above_threshold(value: Any) -> None:
    params = {"pipelinechannel--random-num-Output": value}
    assert evaluate_condition(f"{RANDOM} > 5", params) is True
    assert evaluate_condition(f"{RANDOM} <= 5", params) is False


@pytest.mark.parametrize("value", ["3", 3, 3.0, 5.9])
def test_int_cast_below_threshold(value: Any) -> None:
    params = {"pipelinechannel--random-num-Output": value}
    assert evaluate_condition(f"{RANDOM} > 5", params) is False
    assert evaluate_condition(f"{RANDOM} <= 5", params) is True


def test_int_cast_between_two_parameters() -> None:
    cond = (
        "int(inputs.parameter_values['pipelinechannel--loop-item-param-1']) >= "
        "int(inputs.parameter_values['pipelinechannel--threshold'])"
    )
    params = {"pipelinechannel--loop-item-param-1": 2, "pipelinechannel--threshold": "2"}
    assert evaluate_condition(cond, params) is True
    params["pipelinechannel--threshold"] = 3
    assert evaluate_condition(cond, params) is False


def test_int_cast_is_strict_like_cel_go() -> None:
    # cel-go's int(string) is strconv.ParseInt: '7.0' is an error, not 7.
    with pytest.raises(ExpressionError, match="7.0"):
        evaluate_condition(f"{RANDOM} > 5", {"pipelinechannel--random-num-Output": "7.0"})


@pytest.mark.parametrize("value", [True, False])
def test_boolean_parameter(value: bool) -> None:
    cond = "inputs.parameter_values['pipelinechannel--run_evaluation'] == true"
    params = {"pipelinechannel--run_evaluation": value}
    assert evaluate_condition(cond, params) is value
    assert evaluate_condition(f"!({cond})", params) is (not value)


@pytest.mark.parametrize("value, expected", [("heads", False), ("tails", True)])
def test_negated_else_branch(value: str, expected: bool) -> None:
    cond = "!(inputs.parameter_values['pipelinechannel--flip-coin-Output'] == 'heads')"
    assert evaluate_condition(cond, {"pipelinechannel--flip-coin-Output": value}) is expected


DIE = "inputs.parameter_values['pipelinechannel--flip-three-sided-die-Output']"
DIE_BRANCHES = {  # dsl.If / dsl.Elif / dsl.Else as compiled
    "heads": f"{DIE} == 'heads'",
    "tails": f"!({DIE} == 'heads') && {DIE} == 'tails'",
    "draw": f"!({DIE} == 'heads') && !({DIE} == 'tails')",
}
NUM = "int(inputs.parameter_values['pipelinechannel--int-0-to-9999-Output'])"
NUM_BRANCHES = {
    "low": f"{NUM} < 5000",
    "high": f"!({NUM} < 5000) && {NUM} > 5000",
    "equal": f"!({NUM} < 5000) && !({NUM} > 5000)",
}


@pytest.mark.parametrize("outcome", ["heads", "tails", "draw"])
def test_elif_chain_on_strings_takes_exactly_one_branch(outcome: str) -> None:
    params = {"pipelinechannel--flip-three-sided-die-Output": outcome}
    taken = {b for b, cond in DIE_BRANCHES.items() if evaluate_condition(cond, params)}
    assert taken == {outcome}


@pytest.mark.parametrize("value, branch", [(4999, "low"), (5000.0, "equal"), ("5001", "high")])
def test_elif_chain_on_ints_takes_exactly_one_branch(value: Any, branch: str) -> None:
    params = {"pipelinechannel--int-0-to-9999-Output": value}
    taken = {b for b, cond in NUM_BRANCHES.items() if evaluate_condition(cond, params)}
    assert taken == {branch}


def test_comparing_two_parameters() -> None:
    cond = (
        "inputs.parameter_values['pipelinechannel--flip-coin-op-2-Output'] == "
        "inputs.parameter_values['pipelinechannel--flip-coin-op-3-Output']"
    )
    same = {"pipelinechannel--flip-coin-op-2-Output": "heads"}
    same["pipelinechannel--flip-coin-op-3-Output"] = "heads"
    assert evaluate_condition(cond, same) is True
    other = {**same, "pipelinechannel--flip-coin-op-3-Output": "tails"}
    assert evaluate_condition(cond, other) is False


def test_kfp_backend_condition_cases() -> None:
    # From expression_test.go TestCondition (cel-go v0.30: heterogeneous equality).
    params = {"type": "foo", "num": 1}
    assert evaluate_condition("inputs.parameter_values['type']=='foo'", params) is True
    assert evaluate_condition("inputs.parameter_values['type']=='foo2'", params) is False
    assert evaluate_condition("inputs.parameter_values['num'] == 1", params) is True
    cond = "inputs.parameter_values['type']=='foo' && inputs.parameter_values['num'] == 1.0"
    assert evaluate_condition(cond, params) is True
    assert evaluate_condition("inputs.parameter_values['type'] == 1", params) is False


def test_parse_json_in_condition() -> None:
    cond = "parseJson(inputs.parameter_values['cfg'])['n'] > 2"
    assert evaluate_condition(cond, {"cfg": '{"n": 3}'}) is True


# --- parameterExpressionSelector -----------------------------------------------------


def test_selector_on_json_string() -> None:
    item = '{"A_a": "heads", "B_b": 2}'
    assert apply_selector('parseJson(string_value)["A_a"]', item) == "heads"
    assert apply_selector('parseJson(string_value)["B_b"]', item) == 2  # double 2.0 -> 2


def test_selector_on_loop_sub_item_struct() -> None:
    # A ParallelFor over dicts: the item is a Struct; string_value is its JSON text and
    # the SDK selects a sub-variable with parseJson(string_value)["<key>"].
    item = {"A_a": "heads", "B_b": 2, "c": [1.5, {"d": None}]}
    assert apply_selector('parseJson(string_value)["A_a"]', item) == "heads"
    assert apply_selector('parseJson(string_value)["B_b"]', item) == 2
    assert apply_selector('parseJson(string_value)["c"]', item) == [1.5, {"d": None}]
    assert apply_selector('struct_value["A_a"]', item) == "heads"
    assert apply_selector("struct_value.c", item) == [1.5, {"d": None}]


def test_kfp_backend_selector_cases() -> None:
    # From expression_test.go TestSelect.
    nested = {"nested": {"a": "A", "b": "B"}, "bool": True, "double": 1.3, "int": 10}
    assert apply_selector("string_value", "Hello,World!") == "Hello,World!"
    assert apply_selector("parseJson(string_value)[0]", "[1.1,1.2,1.3]") == 1.1
    assert apply_selector("string_value", None) == ""
    assert apply_selector("struct_value.a", {"a": "A", "b": "B"}) == "A"
    assert apply_selector("struct_value.nested", nested) == {"a": "A", "b": "B"}
    assert apply_selector("struct_value.nested.b", nested) == "B"
    assert apply_selector("struct_value.int", nested) == 10
    with pytest.raises(ExpressionError, match="failed to unmarshal JSON"):
        apply_selector("parseJson(string_value)", "invalidjson")
    with pytest.raises(ExpressionError, match="struct_value"):
        apply_selector("struct_value", "Hello")
    with pytest.raises(ExpressionError):
        apply_selector("struct_value.c", {"a": "A"})


def test_value_to_text_matches_pb_value_to_text() -> None:
    values = (None, "s", True, 3, 3.0, 0.5, 1e21)
    expected = ["", "s", "true", "3", "3", "0.5", "1000000000000000000000"]
    assert [value_to_text(v) for v in values] == expected
    assert value_to_text({"b": 1.0, "a": [True, None]}) == '{"a":[true,null],"b":1}'


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["1 +", "inputs.parameter_values['x'] = 'y'", ""])
def test_check_expression_reports_syntax_errors(bad: str) -> None:
    message = check_expression(bad)
    assert message and "syntax error" in message
    with pytest.raises(ExpressionError, match="syntax error"):
        evaluate_condition(bad, {})


def test_missing_parameter_is_named() -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate_condition(COIN, {"pipelinechannel--other": "heads"})
    message = str(info.value)
    assert "missing parameter(s) 'pipelinechannel--flip-coin-op-Output'" in message
    assert COIN in message and "pipelinechannel--other" in message
    assert isinstance(info.value, KfxError)


def test_non_bool_condition_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="not a bool"):
        evaluate_condition("inputs.parameter_values['x']", {"x": "heads"})


def test_module_import_does_not_load_celpy() -> None:
    code = "import sys, airflow_kfx.expressions; assert 'celpy' not in sys.modules"
    root = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
