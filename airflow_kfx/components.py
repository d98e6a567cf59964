"""KFP components as Airflow operators in hand-written DAGs (PRODUCT.md §2).

    prep_op = load_component_from_file("components/prep/component.yaml")
    with DAG("hand_written", ...):
        prep = prep_op(task_id="prep", rows=100)
        train = train_op(task_id="train", data=prep.outputs["data"], lr=0.1)

Each call creates a :class:`KfxComponentOperator` (the same pod-building operator
compiled pipelines use) in the current DAG. Inputs may be literals, another
component task's ``.outputs["name"]`` (or ``.output``), an Airflow ``XComArg``, or
``dag_param("name")`` for a DAG param; references create the dependency.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_kfx.exceptions import SpecError, UnsupportedFeatureError
from airflow_kfx.spec.model import Component, Dag, Executor, Location, Pipeline
from airflow_kfx.spec.source import decode_text, load_documents, root_node

if TYPE_CHECKING:
    from airflow_kfx.operators.component import KfxComponentOperator


def load_component_from_text(text: str, *, source: str = "<text>") -> ComponentFactory:
    """The core loader: a v1 ``component.yaml`` or a compiled v2 component."""
    documents = load_documents(text, source)
    if not documents:
        raise SpecError("the component file is empty", file=source, line=1)
    document = documents[0]
    node = root_node(document, source)
    digest = hashlib.sha256(text.encode()).hexdigest()
    from airflow_kfx.spec.v1_component import is_v1_component, parse_v1_component

    if is_v1_component(document):
        v1 = parse_v1_component(node)
        return ComponentFactory(v1.name, v1.description, v1.component, v1.executor, v1.v1_types, source, digest)
    from airflow_kfx.spec.loader import load_pipeline_text

    pipeline = load_pipeline_text(text, file=source, digest=digest)
    tasks = pipeline.root.dag.tasks if pipeline.root.dag else {}
    if len(tasks) != 1:
        node.fail(
            f"a compiled component holds exactly one task; this pipeline has {len(tasks)} — "
            "load it with load_pipeline instead"
        )
    task = next(iter(tasks.values()))
    component = pipeline.components[task.component]
    if component.dag is not None or component.executor_label is None:
        raise UnsupportedFeatureError("component of components", "the compiled component is itself a pipeline", file=source)
    executor = pipeline.executors[component.executor_label]
    if executor.container is None:
        raise UnsupportedFeatureError("importer component", "only container components can be loaded as components", file=source)
    return ComponentFactory(pipeline.display_name or pipeline.name, pipeline.description or "", component, executor, None, source, digest)


def load_component_from_file(path: str | os.PathLike[str]) -> ComponentFactory:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise SpecError(f"cannot read the component: {err.strerror}", file=str(path)) from None
    return load_component_from_text(decode_text(data, str(path)), source=str(path))


def load_component_from_url(url: str, *, timeout: float = 30.0) -> ComponentFactory:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (user-chosen URL)
            data = response.read()
    except OSError as err:
        raise SpecError(f"cannot download the component: {err}", file=url) from None
    return load_component_from_text(decode_text(data, url), source=url)


class ComponentFactory:
    """Calling it creates a task running the component in the current DAG."""

    def __init__(
        self,
        name: str,
        description: str,
        component: Component,
        executor: Executor,
        v1_types: Mapping[str, str] | None,
        source: str,
        digest: str,
    ) -> None:
        self.name = name
        self.description = description
        self.component = component
        self.executor = executor
        self.v1_types = v1_types  # None for v2 components
        self.source = source
        location = Location(source, "", None)
        self.pipeline = Pipeline(
            name=name,
            source_file=source,
            digest=digest,
            root=Component("root", location, dag=Dag(tasks={})),
            components={component.name: component},
            executors={executor.label: executor},
            description=description or None,
        )
        self.__doc__ = description or f"KFP component '{name}'"

    @property
    def input_names(self) -> list[str]:
        return [*self.component.inputs.parameters, *self.component.inputs.artifacts]

    def __call__(self, *, task_id: str | None = None, **inputs: Any) -> KfxComponentOperator:
        from airflow_kfx.operators.component import make_component_task

        return make_component_task(self, task_id or _task_id(self.name), inputs)

    def __repr__(self) -> str:
        return f"<KFP component {self.name!r} from {self.source}>"


def _task_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name.lower()).strip("-") or "component"


# Re-exported for type hints; defined with the operators (it imports the cncf provider).
def __getattr__(name: str) -> Any:
    if name == "KfxComponentOperator":
        from airflow_kfx.operators.component import KfxComponentOperator

        return KfxComponentOperator
    raise AttributeError(name)
