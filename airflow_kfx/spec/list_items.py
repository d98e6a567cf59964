"""The item type of a pipeline's LIST parameters, where the pipeline says it.

The IR types a list only as LIST. Its items' type survives in two places, both
looked up through every task (nested pipelines and loops included) that consumes
the parameter:

* a ``ParallelFor`` over the list types its loop item (the SDK compiles the items
  of ``List[int]`` as NUMBER_INTEGER); a plain ``list`` gives STRING there, which
  says nothing, so the item's consumers are asked instead;
* a lightweight Python component's source keeps its signature: ``nums: List[int]``.

Consumers that disagree leave the items untyped.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import lru_cache

from airflow_kfx.spec.model import Component, ComponentInput, ParameterIterator, ParameterType, Pipeline

_PYTHON_TYPES = {"int": "NUMBER_INTEGER", "float": "NUMBER_DOUBLE", "bool": "BOOLEAN", "str": "STRING",
                 "dict": "STRUCT", "Dict": "STRUCT", "list": "LIST", "List": "LIST"}


def list_item_types(pipeline: Pipeline) -> dict[str, str]:
    """``{parameter: item ParameterType name}`` for the root LIST parameters whose items are typed."""
    found: dict[str, str] = {}
    for name, spec in pipeline.root.inputs.parameters.items():
        if spec.type is ParameterType.LIST:
            kinds = set(_item_kinds(pipeline, pipeline.root, name))
            if len(kinds) == 1:
                found[name] = kinds.pop()
    return found


def _consumers(pipeline: Pipeline, component: Component, name: str) -> Iterator[tuple[object, Component, str]]:
    """(task, its component, its input) for each task of ``component`` given input ``name`` as is."""
    for task in component.dag.tasks.values() if component.dag else ():
        child = pipeline.components.get(task.component)
        for task_input in task.inputs.values():
            if child and not task_input.is_artifact and task_input.source == ComponentInput(name) \
                    and not task_input.selector:
                yield task, child, task_input.name


def _item_kinds(pipeline: Pipeline, component: Component, name: str) -> Iterator[str]:
    for task, child, input_name in _consumers(pipeline, component, name):
        iterator = getattr(task, "iterator", None)
        if isinstance(iterator, ParameterIterator) and iterator.input_parameter == input_name:
            item = child.inputs.parameters.get(iterator.item_input)
            if item is not None and item.type is not ParameterType.STRING:
                yield item.type.value
            else:
                yield from _value_kinds(pipeline, child, iterator.item_input)
        if child.dag is not None:
            yield from _item_kinds(pipeline, child, input_name)
        else:
            kind = _annotated_item_kind(pipeline, child, input_name)
            if kind:
                yield kind


def _value_kinds(pipeline: Pipeline, component: Component, name: str) -> Iterator[str]:
    """The declared types of the inputs that receive input ``name`` of ``component``."""
    for _, child, input_name in _consumers(pipeline, component, name):
        if child.dag is not None:
            yield from _value_kinds(pipeline, child, input_name)
        elif input_name in child.inputs.parameters:
            yield child.inputs.parameters[input_name].type.value


def _annotated_item_kind(pipeline: Pipeline, component: Component, input_name: str) -> str | None:
    """``List[int]`` → NUMBER_INTEGER, from a lightweight component's function source."""
    executor = pipeline.executors.get(component.executor_label or "")
    container = executor.container if executor else None
    if container is None:
        return None
    texts = [t for t in (*container.command, *container.args) if isinstance(t, str)]
    function = next((b for a, b in zip(texts, texts[1:]) if a == "--function_to_execute"), None)
    for text in texts:
        if function and f"def {function}(" in text:
            annotation = _signature(text, function).get(input_name)
            return _list_item_kind(annotation) if annotation is not None else None
    return None


@lru_cache(maxsize=256)
def _signature(source: str, function: str) -> dict[str, ast.expr]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            return {a.arg: a.annotation for a in arguments if a.annotation is not None}
    return {}


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _list_item_kind(node: ast.expr) -> str | None:
    # Optional[X], Union[X, None] and X | None are X
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [s for s in (node.left, node.right) if not (isinstance(s, ast.Constant) and s.value is None)]
        return _list_item_kind(sides[0]) if len(sides) == 1 else None
    if isinstance(node, ast.Subscript) and _name(node.value) in ("Optional", "Union"):
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        kept = [s for s in inner if not (isinstance(s, ast.Constant) and s.value is None)]
        return _list_item_kind(kept[0]) if len(kept) == 1 else None
    if isinstance(node, ast.Subscript) and _name(node.value) in ("List", "list"):
        item = node.slice.value if isinstance(node.slice, ast.Subscript) else node.slice
        return _PYTHON_TYPES.get(_name(item))
    return None
