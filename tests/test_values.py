"""airflow_kfx.values: one table of rules per KFP ParameterType, and the places that use it.

Expected values follow the KFP v2 backend (kubeflow/pipelines):
  * typed values: backend/src/v2/driver/resolve.go (STRING takes any value's
    PbValueToText; other types need their JSON shape);
  * text: backend/src/v2/metadata/converter.go TextToPbValue (ParseInt/ParseFloat/
    ParseBool of the trimmed text, JSON for LIST/STRUCT) and PbValueToText
    (FormatFloat 'f', FormatBool, compact protojson);
  * run parameters: what KFP's run form delivers (JSON lists: numbers stay numbers).
The kfp_reference tests ask the KFP SDK in /work/main/.venv-kfp.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_kfx.exceptions import SpecError
from airflow_kfx.params import check_run_parameters, list_item_types, parse_params, run_parameter
from airflow_kfx.spec.loader import load_pipeline_file
from airflow_kfx.values import (
    ParameterValueError,
    convert,
    convert_run_parameter,
    json_schema,
    parse_text,
    to_text,
)
from tests.support import FIXTURES, REPO

KFP_PYTHON = REPO / ".venv-kfp" / "bin" / "python"
TYPED_LISTS = REPO / "tests" / "fixtures" / "values" / "typed_lists.yaml"
NAN = math.nan


class Refused:
    """The rule refuses the input; ``says`` is part of the message."""

    def __init__(self, says: str = "expected") -> None:
        self.says = says

    def __repr__(self) -> str:
        return f"Refused({self.says!r})"


X = Refused()

# -- the table ----------------------------------------------------------------------------------

# One column per input (JSON values and text), one row per type: what convert() gives.
INPUTS: list[Any] = ["1", "true", "True", 1, 1.0, 1.5, "1e3", "", None, "[1,2]", '["10","20"]',
                     {"b": {"c": [1.0]}, "a": "x"}, NAN, True, [1, "a"]]
TABLE: dict[str, list[Any]] = {
    # resolve.go: a non-string STRING input becomes its PbValueToText; text stays as is
    "STRING": ["1", "true", "True", "1", "1", "1.5", "1e3", "", None, "[1,2]", '["10","20"]',
               '{"a":"x","b":{"c":[1]}}', "NaN", "true", '[1,"a"]'],
    # protobuf numbers are doubles: 1.0 is 1; text is ParseInt (base 10, int64): "1e3" is not
    "NUMBER_INTEGER": [1, X, X, 1, 1, Refused("got 1.5"), Refused("got '1e3'"), X, None, X, X, X, X, X, X],
    "NUMBER_DOUBLE": [1.0, X, X, 1.0, 1.0, 1.5, 1000.0, X, None, X, X, X, NAN, X, X],
    # text is ParseBool (1/t/T/TRUE/true/True and 0/…); a number is not a boolean (driver)
    "BOOLEAN": [True, True, True, Refused("got 1"), X, X, X, X, None, X, X, X, X, True, X],
    "LIST": [X, X, X, X, X, X, X, Refused("not JSON"), None, [1, 2], ["10", "20"], X, X, X, [1, "a"]],
    "STRUCT": [X, X, X, X, X, X, X, X, None, X, X, {"b": {"c": [1.0]}, "a": "x"}, X, X, X],
    "TASK_FINAL_STATUS": [X, X, X, X, X, X, X, X, None, X, X, {"b": {"c": [1.0]}, "a": "x"}, X, X, X],
}
CASES = [(kind, value, row[i]) for kind, row in TABLE.items() for i, value in enumerate(INPUTS)]


def same(a: Any, b: Any) -> bool:
    """Equal, of the same Python type (1 is not 1.0 nor True), NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("kind, value, expected", CASES, ids=[f"{k}-{v!r}" for k, v, _ in CASES])
def test_the_table(kind: str, value: Any, expected: Any) -> None:
    if isinstance(expected, Refused):
        with pytest.raises(ParameterValueError, match="expected") as info:
            convert(value, kind)
        assert expected.says in str(info.value)
    else:
        assert same(convert(value, kind), expected)


@pytest.mark.parametrize("kind", sorted(TABLE))
def test_text_of_a_typed_value_reads_back_as_that_value(kind: str) -> None:
    """to_text then parse_text round-trips: the command line and an output file agree."""
    for value, expected in zip(INPUTS, TABLE[kind]):
        if expected is None or isinstance(expected, Refused):
            continue
        assert same(parse_text(to_text(value, kind), kind), expected), (value, to_text(value, kind))


def test_messages_say_what_was_expected() -> None:
    with pytest.raises(ParameterValueError) as info:
        convert("x", "NUMBER_INTEGER")
    assert str(info.value) == "expected a whole number, or its text like '42', got 'x'"
    with pytest.raises(ParameterValueError, match=r"got '\{\"a\": 1, \"a\": 2\}' \(not JSON: duplicate key 'a'\)"):
        convert('{"a": 1, "a": 2}', "STRUCT")
    with pytest.raises(ParameterValueError, match=r"true or false .* got \[1\]"):
        convert([1], "BOOLEAN")


def test_unknown_types_pass_values_through_but_text_has_no_meaning() -> None:
    assert convert({"k": [1]}, "BYTES") == {"k": [1]}
    with pytest.raises(ParameterValueError, match="unknown parameter type 'BYTES'"):
        parse_text("x", "BYTES")


def test_converted_values_are_copies() -> None:
    given = {"a": [1]}
    converted = convert(given, "STRUCT")
    converted["a"].append(2)
    assert given == {"a": [1]}


def test_values_is_stdlib_only() -> None:
    import ast
    import sys

    tree = ast.parse((REPO / "airflow_kfx" / "values.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)


# -- text: KFP's command line (PbValueToText) and output files (TextToPbValue) -------------------

# launcher_v2.go getPlaceholders: NUMBER → strconv.FormatFloat(v, 'f', -1, 64),
# BOOL → strconv.FormatBool, LIST/STRUCT → json.Marshal of the structpb message.
@pytest.mark.parametrize(
    "value, ptype, expected",
    [
        (3.0, "NUMBER_DOUBLE", "3"),  # FormatFloat drops ".0"
        (1.5, "NUMBER_DOUBLE", "1.5"),
        (1e-05, "NUMBER_DOUBLE", "0.00001"),  # 'f' never uses an exponent
        (1e21, "NUMBER_DOUBLE", "1000000000000000000000"),
        (0.1, "NUMBER_DOUBLE", "0.1"),  # shortest round-trip digits
        (-2.5, "NUMBER_DOUBLE", "-2.5"),
        (3, "NUMBER_INTEGER", "3"),
        (-7, "NUMBER_INTEGER", "-7"),
        (3.0, "NUMBER_INTEGER", "3"),
        (True, "BOOLEAN", "true"),
        (False, "BOOLEAN", "false"),
        # compact JSON, not Python's '[1, "a"]' (structpb.ListValue.MarshalJSON = protojson)
        ([1, "a"], "LIST", '[1,"a"]'),
        ([1.0, 2.5, None, True], "LIST", "[1,2.5,null,true]"),
        ([1e-7, 1e21, 2e-6], "LIST", "[1e-7,1e+21,0.000002]"),  # protojson switches to 'e'
        ({"b": 1, "a": "x"}, "STRUCT", '{"a":"x","b":1}'),  # protojson sorts map keys
        # json.Marshal escapes HTML characters; non-ASCII stays raw UTF-8
        ({"k": "<a&b>", "u": "é"}, "STRUCT", '{"k":"\\u003ca\\u0026b\\u003e","u":"é"}'),
        ({"nested": {"z": [1], "y": "q\"\n"}}, "STRUCT", '{"nested":{"y":"q\\"\\n","z":[1]}}'),
        ("hello world", "STRING", "hello world"),
        ("", "STRING", ""),
        (3, "STRING", "3"),  # resolve.go: a non-string STRING input becomes PbValueToText
        ([1, 2], "STRING", "[1,2]"),
        (None, "STRING", ""),
        ("3", "NUMBER_INTEGER", "3"),  # text is read as KFP reads text
        ("2.50", "NUMBER_DOUBLE", "2.5"),
        ("True", "BOOLEAN", "true"),
        ("[1, 2]", "LIST", "[1,2]"),
        ('{"b": 2, "a": 1}', "STRUCT", '{"a":1,"b":2}'),
        (math.inf, "NUMBER_DOUBLE", "+Inf"),
        (-math.inf, "NUMBER_DOUBLE", "-Inf"),
        (NAN, "NUMBER_DOUBLE", "NaN"),
        ([NAN, math.inf], "LIST", '["NaN","Infinity"]'),  # protojson
    ],
)
def test_command_line_text(value: Any, ptype: str, expected: str) -> None:
    assert to_text(value, ptype) == expected


@pytest.mark.parametrize(
    "ptype, text, expected",
    [
        ("STRING", "hello\n", "hello\n"),  # as is: TextToPbValue does not trim strings
        ("NUMBER_INTEGER", "3", 3),
        ("NUMBER_INTEGER", " -42\n", -42),  # strconv.ParseInt(strings.TrimSpace(text), 10, 0)
        ("NUMBER_INTEGER", "+7", 7),
        ("NUMBER_DOUBLE", "1.5\n", 1.5),
        ("NUMBER_DOUBLE", "3", 3.0),
        ("NUMBER_DOUBLE", "1e-3", 0.001),
        ("NUMBER_DOUBLE", "0x1p-2", 0.25),  # ParseFloat accepts hex floats
        ("NUMBER_DOUBLE", "-Inf", -math.inf),
        ("BOOLEAN", "true", True),
        ("BOOLEAN", "True\n", True),
        ("BOOLEAN", "1", True),  # strconv.ParseBool
        ("BOOLEAN", "F", False),
        ("LIST", '[1, "a", {"k": null}]', [1, "a", {"k": None}]),
        ("STRUCT", '{"a": [1, 2]}', {"a": [1, 2]}),
    ],
)
def test_output_file_text(ptype: str, text: str, expected: Any) -> None:
    assert same(parse_text(text, ptype), expected)


@pytest.mark.parametrize(
    "ptype, text",
    [
        ("NUMBER_INTEGER", "3.0"),  # ParseInt rejects it (kfp.local's json.loads would not)
        ("NUMBER_INTEGER", "1_000"),
        ("NUMBER_INTEGER", "0x10"),
        ("NUMBER_INTEGER", str(2**63)),  # int64 overflow (the message says so)
        ("NUMBER_INTEGER", ""),
        ("NUMBER_DOUBLE", "1e999"),  # ErrRange
        ("NUMBER_DOUBLE", "1_0.5"),
        ("NUMBER_DOUBLE", "+nan"),
        ("BOOLEAN", "yes"),
        ("BOOLEAN", "tRuE"),
        ("LIST", '{"a": 1}'),
        ("LIST", "[NaN]"),  # protojson has no NaN token
        ("STRUCT", '{"a": 1, "a": 2}'),  # protojson rejects duplicate keys
        ("STRUCT", "not json"),
        ("BYTES", "x"),
    ],
)
def test_output_file_text_refused(ptype: str, text: str) -> None:
    with pytest.raises(ParameterValueError):
        parse_text(text, ptype)


def test_range_errors_say_so() -> None:
    with pytest.raises(ParameterValueError, match=r"got '9223372036854775808' \(out of the 64-bit range\)"):
        parse_text(str(2**63), "NUMBER_INTEGER")
    with pytest.raises(ParameterValueError, match=r"\(out of the 64-bit range\)"):
        convert_run_parameter(["1e999"], "LIST", "NUMBER_DOUBLE")


# -- run parameters: the trigger form, the REST API, kfx run -p --------------------------------

RUN_CASES = [
    # (type, item type, given, expected) — the form sends a list as lines of text
    ("LIST", None, ["10", "20"], [10, 20]),
    ("LIST", None, [" 1.5", "-2e3 "], [1.5, -2000.0]),
    ("LIST", None, '["10","20"]', [10, 20]),  # JSON text (kfx run -p) of the same list
    ("LIST", None, ["10", "abc"], ["10", "abc"]),  # mixed: its text items are text
    ("LIST", None, ["010", "1"], ["010", "1"]),  # "010" is no JSON number
    ("LIST", None, [], []),
    ("LIST", None, [1, "2"], [1, "2"]),
    ("LIST", "NUMBER_INTEGER", ["10", "20"], [10, 20]),
    ("LIST", "NUMBER_INTEGER", [10, 20.0], [10, 20]),
    ("LIST", "NUMBER_INTEGER", ["10", "abc"], Refused("item 1: expected a whole number")),
    ("LIST", "NUMBER_INTEGER", ["1.5"], Refused("item 0")),
    ("LIST", "NUMBER_DOUBLE", ["1", "2.5"], [1.0, 2.5]),
    ("LIST", "BOOLEAN", ["true", "0"], [True, False]),
    ("LIST", "STRING", [10, "a"], ["10", "a"]),
    ("LIST", "STRUCT", ['{"a": 1}'], [{"a": 1}]),
    ("NUMBER_INTEGER", None, 3.0, 3),
    ("NUMBER_INTEGER", None, "x", Refused("got 'x'")),
    ("STRUCT", None, {"k": ["10"]}, {"k": ["10"]}),  # only a LIST's own items are read
]


@pytest.mark.parametrize("kind, item, given, expected", RUN_CASES)
def test_run_parameters(kind: str, item: str | None, given: Any, expected: Any) -> None:
    if isinstance(expected, Refused):
        with pytest.raises(ParameterValueError, match=expected.says):
            convert_run_parameter(given, kind, item)
    else:
        converted = convert_run_parameter(given, kind, item)
        assert same(converted, expected)
        assert all(same(a, b) for a, b in zip(converted, expected)) if isinstance(expected, list) else True


SCHEMA_VALUES: list[Any] = [*INPUTS, 3, -7, 2.5, True, False, [], ["10", "20"], ["10", "abc"],
                            [" 2 ", "3"], ["1.5"], ["true", "f"], [1, [2]], {}, {"k": 1}]


@pytest.mark.parametrize("kind, item", [
    *((kind, None) for kind in ("STRING", "NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "LIST", "STRUCT")),
    *(("LIST", item) for item in ("STRING", "NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "LIST", "STRUCT")),
])
def test_what_the_trigger_form_accepts_the_run_accepts(kind: str, item: str | None) -> None:
    """Airflow checks a run's conf against the DAG params' JSON schema when the run is
    triggered; nothing it lets through may fail kfx-run-start's conversion."""
    schema = json_schema(kind, item)
    for value in SCHEMA_VALUES:
        if value is None or not jsonschema.Draft202012Validator(schema).is_valid(value):
            continue
        convert_run_parameter(value, kind, item)  # raises if the two disagree


@pytest.mark.parametrize(
    "kind, item, accepted, refused",
    [
        ("NUMBER_INTEGER", None, [3, 3.0, -7], [1.5, "3", True, None]),  # the form sends numbers
        ("NUMBER_DOUBLE", None, [3, 2.5], ["2.5", True]),
        ("BOOLEAN", None, [True], ["true", 1]),
        ("LIST", None, [[], ["10", "20"], [1, "a"]], ['["10"]', {}]),
        ("LIST", "NUMBER_INTEGER", [["10", " 20 "], [1, 2.0]], [["abc"], ["1.5"], ["1e3"]]),
        ("LIST", "NUMBER_DOUBLE", [["1", "2.5", "-inf"], [1.5]], [["abc"], ["+nan"]]),
        ("LIST", "BOOLEAN", [["true", "0"], [False]], [["yes"], [1]]),
        ("STRUCT", None, [{"a": 1}], [[1], '{"a": 1}']),
    ],
)
def test_the_json_schema(kind: str, item: str | None, accepted: list[Any], refused: list[Any]) -> None:
    validator = jsonschema.Draft202012Validator(json_schema(kind, item))
    assert [v for v in accepted if not validator.is_valid(v)] == []
    assert [v for v in refused if validator.is_valid(v)] == []


def test_schemas_keep_the_forms_fields() -> None:
    # Airflow's form picks a field by the schema's "type"; a list's items have none,
    # so the form keeps one item per line (FieldStringArray)
    assert json_schema("NUMBER_INTEGER", nullable=True) == {"type": ["integer", "null"]}
    assert json_schema("BOOLEAN") == {"type": "boolean"}
    assert "type" not in json_schema("LIST", "NUMBER_INTEGER")["items"]
    assert json_schema("LIST", "STRING") == {"type": "array"}


# -- a pipeline's run parameters ----------------------------------------------------------------


def test_list_item_types_come_from_the_components() -> None:
    assert list_item_types(load_pipeline_file(TYPED_LISTS)) == {
        "nums": "NUMBER_INTEGER",  # List[int] in the component's signature
        "ratios": "NUMBER_DOUBLE",  # List[float]
        "sizes": "NUMBER_INTEGER",  # a plain list whose loop items go to an int input
    }
    assert list_item_types(load_pipeline_file(FIXTURES / "loops.yaml")) == {"names": "STRING"}  # greet(name: str)
    assert list_item_types(load_pipeline_file(FIXTURES / "typed_params.yaml")) == {}  # items: list


def test_check_run_parameters_names_every_bad_one() -> None:
    pipeline = load_pipeline_file(FIXTURES / "typed_params.yaml")
    defaults = {n: s.default for n, s in pipeline.root.inputs.parameters.items() if s.has_default}
    conf = {"name": 7, "count": "x", "ratio": "0.5", "flag": 1, "items": ["10", "20"], "config": None}
    values, problems = check_run_parameters(pipeline, {**defaults, **conf}, conf)
    assert problems == [
        "config (STRUCT): needs a value, got null",
        "count (NUMBER_INTEGER): expected a whole number, or its text like '42', got 'x'",
        "flag (BOOLEAN): expected true or false (as text also 1/0, t/f, TRUE/FALSE, True/False), got 1",
    ]
    assert values == {"name": "7", "ratio": 0.5, "items": [10, 20], "text": "hello"}


def test_unknown_run_parameters_are_refused() -> None:
    """A misspelt name would run silently with the default value."""
    pipeline = load_pipeline_file(FIXTURES / "typed_params.yaml")
    defaults = {n: s.default for n, s in pipeline.root.inputs.parameters.items() if s.has_default}
    conf = {"name": "w", "cuont": 3}
    _, problems = check_run_parameters(pipeline, {**defaults, **conf}, conf)
    assert problems == [
        "cuont: the pipeline has no such parameter (its parameters: "
        + ", ".join(pipeline.root.inputs.parameters) + ")"
    ]


def test_defaults_reach_components_as_compiled() -> None:
    pipeline = load_pipeline_file(TYPED_LISTS)
    assert run_parameter(pipeline, "values", ["1", "2"], given=False) == ["1", "2"]
    assert run_parameter(pipeline, "values", ["1", "2"], given=True) == [1, 2]
    _, problems = check_run_parameters(pipeline, {"nums": ["1", "x"], "values": [1, 2]}, {"nums": ["1", "x"]})
    assert problems == ["nums (LIST of NUMBER_INTEGER): item 1: expected a whole number, or its text like '42', "
                        "got 'x'"]


def test_the_dag_params_use_the_table() -> None:
    from airflow_kfx.dag_builder import pipeline_params

    params = pipeline_params(load_pipeline_file(TYPED_LISTS))
    assert params["nums"].schema["items"] == json_schema("LIST", "NUMBER_INTEGER")["items"]
    assert "LIST of NUMBER_INTEGER" in params["nums"].description
    assert params["values"].schema == {"type": "array"}
    params["nums"].resolve(["10", "20"])
    with pytest.raises(Exception, match="abc"):
        params["nums"].resolve(["10", "abc"])


def test_kfx_run_p_uses_the_same_rules() -> None:
    pipeline = load_pipeline_file(TYPED_LISTS)
    assert parse_params(pipeline, ['nums=["10", "20"]', "values=[1, \"2\"]"]) == {"nums": [10, 20], "values": [1, "2"]}
    with pytest.raises(SpecError, match=r"-p nums: '\[\"1\", \"x\"\]' is not a valid LIST: item 1: expected"):
        parse_params(pipeline, ['nums=["1", "x"]'])
    typed = load_pipeline_file(FIXTURES / "typed_params.yaml")
    assert parse_params(typed, ["name=n", "flag=1", "count= 41 ", "ratio=1e3"]) == {
        "name": "n", "flag": True, "count": 41, "ratio": 1000.0}


# -- cross-checks with the KFP SDK ------------------------------------------------------------------

_SDK_SCRIPT = r"""
import json, sys
from kfp.dsl import structures
from kfp.dsl.types import type_utils

SDK_TYPES = {"STRING": "String", "NUMBER_INTEGER": "Integer", "NUMBER_DOUBLE": "Float",
             "BOOLEAN": "Boolean", "LIST": "List", "STRUCT": "Dict"}
cases = json.load(sys.stdin)
print(json.dumps([
    type_utils.verify_type_compatibility(value, structures.InputSpec(type=SDK_TYPES[kind]), "", raise_on_error=False)
    for kind, value in cases
]))
"""


def _sdk(*args: str, stdin: str = "", cwd: Path | None = None) -> str:
    """Run the KFP SDK's Python with ``args``; its standard output."""
    result = subprocess.run([str(KFP_PYTHON), *args], input=stdin, capture_output=True, text=True,
                            timeout=300, check=False, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


# What we take that the SDK refuses when a pipeline is called with it, and why.
WIDER_THAN_THE_SDK = [
    ("NUMBER_INTEGER", 1.0),  # a double: KFP's backend has no other number
    ("NUMBER_DOUBLE", 1),  # the same: KFP's backend takes any number for NUMBER_DOUBLE
    *((kind, v) for kind in TABLE if kind != "STRING" for v in INPUTS if isinstance(v, str)),  # text
    *(("STRING", v) for v in INPUTS if not isinstance(v, str) and v is not None),  # PbValueToText
]


@pytest.mark.kfp_reference
@pytest.mark.skipif(not KFP_PYTHON.exists(), reason=".venv-kfp (kfp 2.x) not installed")
def test_the_table_against_the_sdks_argument_check() -> None:
    """Every value the SDK accepts as an argument of a type, we accept and keep; where
    we accept more, it is listed (with why) in WIDER_THAN_THE_SDK."""
    cases = [(kind, value, expected) for kind, value, expected in CASES
             if kind != "TASK_FINAL_STATUS" and value is not None and not (isinstance(value, float) and math.isnan(value))]
    verdicts = json.loads(_sdk("-c", _SDK_SCRIPT, stdin=json.dumps([(kind, value) for kind, value, _ in cases])))
    for (kind, value, expected), sdk_accepts in zip(cases, verdicts):
        ours = not isinstance(expected, Refused)
        if sdk_accepts:
            assert ours and expected == value, (kind, value)
        elif ours:
            assert any(same(k, kind) and same(v, value) for k, v in WIDER_THAN_THE_SDK), (kind, value)


_EXECUTOR_SCRIPT = r"""
import json, sys
from typing import List
from kfp.dsl.executor import Executor

def describe(nums: List[int], values: list, ratios: List[float], n: int, r: float, flag: bool) -> str:
    seen = dict(nums=nums, values=values, ratios=ratios, n=n, r=r, flag=flag)
    return json.dumps({k: [v, type(v).__name__ if not isinstance(v, list) else [type(i).__name__ for i in v]]
                       for k, v in seen.items()})

Executor(executor_input=json.loads(sys.argv[1]), function_to_execute=describe).execute()
"""


@pytest.mark.kfp_reference
@pytest.mark.skipif(not KFP_PYTHON.exists(), reason=".venv-kfp (kfp 2.x) not installed")
def test_form_values_reach_a_python_component_as_kfp_delivers_them(tmp_path: Path) -> None:
    """The trigger form's text (lists as lines, numbers in lists as text) through our
    ExecutorInput into the KFP SDK's own executor: the function gets what KFP's backend
    gives it for the JSON values its run form takes ([10, 20] → ints, 1.0 → 1)."""
    from airflow_kfx.task_io import ExecutorContext, executor_input_json, read_outputs

    types = {"nums": "LIST", "values": "LIST", "ratios": "LIST", "n": "NUMBER_INTEGER", "r": "NUMBER_DOUBLE",
             "flag": "BOOLEAN"}
    given = {"nums": convert_run_parameter(["10", "20"], "LIST", "NUMBER_INTEGER"),
             "values": convert_run_parameter(["1", "2.5"], "LIST"),
             "ratios": convert_run_parameter(["1", "0.5"], "LIST", "NUMBER_DOUBLE"),
             "n": 3.0, "r": "2", "flag": "1"}
    ctx = ExecutorContext(input_parameters=given, input_parameter_types=types, input_artifacts={},
                          output_parameters={"Output": str(tmp_path / "Output")}, output_artifacts={},
                          output_file=str(tmp_path / "executor_output.json"))
    _sdk("-c", _EXECUTOR_SCRIPT, executor_input_json(ctx), cwd=tmp_path)
    outputs, _ = read_outputs(ctx.output_parameters, {"Output": "STRING"}, ctx.output_file, {})
    assert json.loads(outputs["Output"]) == {
        "nums": [[10, 20], ["int", "int"]],
        "values": [[1, 2.5], ["int", "float"]],
        "ratios": [[1, 0.5], ["int", "float"]],  # protojson writes 1.0 as 1, so does KFP
        "n": [3, "int"],
        "r": [2, "int"],  # likewise: a whole NUMBER_DOUBLE reaches Python as an int on KFP
        "flag": [True, "bool"],
    }


_COMPILE_SCRIPT = r"""
import sys
from typing import List, Optional
from kfp import compiler, dsl

@dsl.component
def use(a: List[int], b: Optional[List[float]], c: List[str], d: list, e: List[bool]) -> None:
    pass

@dsl.pipeline(name="items")
def items(a: list, b: list, c: list, d: list, e: list):
    use(a=a, b=b, c=c, d=d, e=e)

compiler.Compiler().compile(items, sys.argv[1])
"""


@pytest.mark.kfp_reference
@pytest.mark.skipif(not KFP_PYTHON.exists(), reason=".venv-kfp (kfp 2.x) not installed")
def test_list_item_types_of_what_the_sdk_compiles(tmp_path: Path) -> None:
    source = tmp_path / "items.py"  # the SDK reads a component's source from its file
    source.write_text(_COMPILE_SCRIPT)
    _sdk(str(source), str(tmp_path / "items.yaml"))
    assert list_item_types(load_pipeline_file(tmp_path / "items.yaml")) == {
        "a": "NUMBER_INTEGER", "b": "NUMBER_DOUBLE", "c": "STRING", "e": "BOOLEAN"}


# -- runs ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_bad_value_is_refused_when_the_run_is_triggered(dags_folder: Path) -> None:
    from airflow.exceptions import ParamValidationError

    from tests.runs import run_pipeline

    with pytest.raises(ParamValidationError, match="param count: 'x' is not of type 'integer'"):
        run_pipeline(FIXTURES / "typed_params.yaml", dags_folder, conf={"name": "w", "count": "x"})


@pytest.mark.slow
def test_kfx_run_start_fails_the_run_before_any_task_starts(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A conf Airflow's schema did not check (here: a schema that takes anything, as
    for a run triggered before the pipeline's parameter types changed)."""
    from tests.runs import run_pipeline

    monkeypatch.setattr("airflow_kfx.values.json_schema", lambda *args, **kwargs: {})
    conf = {"name": "w", "count": "x", "flag": "maybe", "items": {"a": 1}}
    result = run_pipeline(FIXTURES / "typed_params.yaml", dags_folder, conf=conf)
    assert result.state == "failed"
    assert result.state_of("kfx-run-start") == "failed"
    others = {task: state for (task, _), state in result.states.items() if not task.startswith("kfx-run-")}
    assert others and set(others.values()) == {"upstream_failed"}, others
    output = capfd.readouterr()
    text = output.out + output.err
    assert "the run's parameters do not fit their KFP types" in text
    for line in ("count (NUMBER_INTEGER): expected a whole number, or its text like '42', got 'x'",
                 "flag (BOOLEAN): expected true or false", "got 'maybe'",
                 "items (LIST): expected a list, or its JSON text like '[1, 2]', got {\"a\": 1}"):
        assert line in text, line

    # an exit handler (it runs after failures) does not start either
    result = run_pipeline(FIXTURES / "exit_handler.yaml", dags_folder, conf={"name": None})
    assert result.state_of("kfx-run-start") == "failed"
    assert result.state_of("report-status") == "skipped"


@pytest.mark.slow
def test_lists_typed_in_the_form_reach_components_as_numbers(dags_folder: Path) -> None:
    from tests.runs import run_pipeline

    conf = {"nums": ["10", "20"], "values": ["1", "2"], "ratios": ["0.5"], "sizes": ["3", "4"]}
    result = run_pipeline(TYPED_LISTS, dags_folder, conf=conf)
    assert result.state == "success"
    assert json.loads(result.parameter("describe-lists")) == {
        "nums": [10, 20], "ratios": [0.5], "types": "int,int,float,int,int", "values": [1, 2]}
    assert result.mapped("for-loop-1.square") == [9, 16]
    plain = run_pipeline(FIXTURES / "typed_params.yaml", dags_folder, conf={"name": "w", "items": ["10", "20"]})
    assert plain.parameter("extend-list") == [10, 20, 3]

