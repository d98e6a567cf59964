"""The typed model every input format is translated into.

One model for KFP v2 IR, compiled v2 components and (later) v1 component specs
and Argo workflows. Frozen dataclasses: the model is built once per file and
shared by the DAG builder, the renderer and every task at run time.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------


class ParameterType(enum.Enum):
    """KFP ``ParameterType.ParameterTypeEnum`` (pipeline_spec.proto)."""

    STRING = "STRING"
    NUMBER_INTEGER = "NUMBER_INTEGER"
    NUMBER_DOUBLE = "NUMBER_DOUBLE"
    BOOLEAN = "BOOLEAN"
    LIST = "LIST"
    STRUCT = "STRUCT"
    TASK_FINAL_STATUS = "TASK_FINAL_STATUS"


class _NoDefault:
    """Marks a parameter without a default (``None`` is a legal default)."""

    _instance: _NoDefault | None = None

    def __new__(cls) -> _NoDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __bool__(self) -> bool:
        return False


NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True)
class Location:
    """Where a model element was declared, for error messages at run time."""

    file: str
    yaml_path: str
    line: int | None = None


# ---------------------------------------------------------------------------
# Value sources: where a task input (or a parameterised platform setting) comes from
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """A literal (``runtimeValue.constant``)."""

    value: Any


@dataclass(frozen=True)
class ComponentInput:
    """An input of the enclosing DAG component (``componentInputParameter`` / ``componentInputArtifact``)."""

    name: str


@dataclass(frozen=True)
class TaskOutput:
    """An output of a sibling task in the same DAG (``taskOutputParameter`` / ``taskOutputArtifact``)."""

    producer_task: str
    output_key: str


@dataclass(frozen=True)
class TaskFinalStatus:
    """The final status of a sibling task, for exit handlers (``taskFinalStatus``)."""

    producer_task: str


ValueSource = Constant | ComponentInput | TaskOutput | TaskFinalStatus


# ---------------------------------------------------------------------------
# Interfaces
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterSpec:
    """A declared input or output parameter."""

    name: str
    type: ParameterType
    default: Any = NO_DEFAULT
    optional: bool = False
    description: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT


@dataclass(frozen=True)
class ArtifactSpec:
    """A declared input or output artifact (``system.Dataset``, ``google.VertexModel``, …)."""

    name: str
    schema_title: str
    schema_version: str = "0.0.1"
    is_list: bool = False
    optional: bool = False
    description: str = ""


@dataclass(frozen=True)
class Interface:
    parameters: Mapping[str, ParameterSpec] = field(default_factory=dict)
    artifacts: Mapping[str, ArtifactSpec] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.parameters) | set(self.artifacts)


# ---------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInput:
    """One argument of a task: where its value comes from."""

    name: str
    is_artifact: bool
    source: ValueSource
    # A CEL expression applied to the value (``parameterExpressionSelector``).
    selector: str | None = None


@dataclass(frozen=True)
class ParameterIterator:
    """``ParallelFor`` over parameters: raw JSON list or a list-valued input."""

    item_input: str
    raw_items: str | None = None  # JSON text of the list, as compiled
    input_parameter: str | None = None  # name of a DAG-task input holding the list


@dataclass(frozen=True)
class ArtifactIterator:
    """``ParallelFor`` over a list of artifacts."""

    item_input: str
    input_artifact: str


@dataclass(frozen=True)
class RetryPolicy:
    max_retry_count: int
    backoff_seconds: float | None = None
    backoff_factor: float | None = None
    backoff_max_seconds: float | None = None


@dataclass(frozen=True)
class CachingOptions:
    enable_cache: bool = False
    cache_key: str | None = None


class TriggerStrategy(enum.Enum):
    ALL_UPSTREAM_TASKS_SUCCEEDED = "ALL_UPSTREAM_TASKS_SUCCEEDED"
    ALL_UPSTREAM_TASKS_COMPLETED = "ALL_UPSTREAM_TASKS_COMPLETED"


@dataclass(frozen=True)
class Task:
    """A ``PipelineTaskSpec``: one node of a DAG component."""

    name: str
    component: str  # key into Pipeline.components
    location: Location
    display_name: str | None = None
    inputs: Mapping[str, TaskInput] = field(default_factory=dict)
    dependent_tasks: tuple[str, ...] = ()
    condition: str | None = None
    trigger_strategy: TriggerStrategy = TriggerStrategy.ALL_UPSTREAM_TASKS_SUCCEEDED
    iterator: ParameterIterator | ArtifactIterator | None = None
    parallelism_limit: int | None = None
    retry: RetryPolicy | None = None
    caching: CachingOptions = CachingOptions()


# ---------------------------------------------------------------------------
# Components and executors
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputSelector:
    """``producerSubtask`` + output key inside a DAG."""

    producer_task: str
    output_key: str


@dataclass(frozen=True)
class DagOutput:
    """A DAG output: one selector, or several for ``dsl.OneOf`` (first that ran wins)."""

    name: str
    is_artifact: bool
    selectors: tuple[OutputSelector, ...]
    is_oneof: bool = False


@dataclass(frozen=True)
class Dag:
    tasks: Mapping[str, Task]
    outputs: Mapping[str, DagOutput] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    """A ``ComponentSpec``: an interface and either a DAG or an executor."""

    name: str
    location: Location
    inputs: Interface = Interface()
    outputs: Interface = Interface()
    dag: Dag | None = None
    executor_label: str | None = None

    @property
    def kind(self) -> str:
        """``loop``/``condition``/``exit-handler``/``pipeline`` for DAGs, else ``executor``."""
        if self.dag is None:
            return "executor"
        short = self.name.removeprefix("comp-")
        for prefix, kind in (
            ("for-loop-", "loop"),
            ("condition-branches-", "branches"),
            ("condition-", "condition"),
            ("exit-handler-", "exit-handler"),
        ):
            if short.startswith(prefix):
                return kind
        return "pipeline"


@dataclass(frozen=True)
class Accelerator:
    type: Any  # str, or a ValueSource when set from a parameter
    count: Any


@dataclass(frozen=True)
class Resources:
    """Container resources; a value may be a placeholder string resolved at run time."""

    cpu_limit: str | None = None
    memory_limit: str | None = None
    cpu_request: str | None = None
    memory_request: str | None = None
    accelerator: Accelerator | None = None


@dataclass(frozen=True)
class Container:
    image: str
    command: tuple[Any, ...] = ()
    args: tuple[Any, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = Resources()
    # KFP v1 ``fileOutputs``: output name → the fixed absolute path the command writes
    # it at; the runtime copies each file to the output's place after the command ends.
    file_outputs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Importer:
    """``dsl.importer``: registers an existing artifact by URI; runs no container."""

    artifact_uri: Any  # a constant str, or ComponentInput for a runtime parameter
    schema_title: str
    schema_version: str = "0.0.1"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reimport: bool = False
    # Copy the artifact into the run's KFP workspace (dsl.WorkspaceConfig).
    download_to_workspace: bool = False


class PvcAction(enum.Enum):
    CREATE = "createpvc"
    DELETE = "deletepvc"


@dataclass(frozen=True)
class Executor:
    """A ``PipelineDeploymentConfig.ExecutorSpec``: exactly one of the bodies is set."""

    label: str
    location: Location
    container: Container | None = None
    importer: Importer | None = None
    # kfp-kubernetes' CreatePVC/DeletePVC compile to stub images handled by us.
    pvc_action: PvcAction | None = None


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline (or a compiled component, which is a one-task pipeline)."""

    name: str
    source_file: str
    digest: str  # sha256 of the file content: cache key and MLflow tag
    root: Component
    components: Mapping[str, Component]
    executors: Mapping[str, Executor]
    display_name: str | None = None
    description: str | None = None
    schema_version: str | None = None
    sdk_version: str | None = None
    default_pipeline_root: str | None = None
    platform: Any = None  # airflow_kfx.spec.platform.KubernetesPlatform | None
    # A deadline for the whole run (a KFP v1 workflow's ``spec.activeDeadlineSeconds``,
    # ``PipelineConf.set_timeout``): the DAG's ``dagrun_timeout``.
    run_deadline_seconds: int | None = None

    @property
    def workspace(self) -> Any:
        """The ``dsl.WorkspaceConfig`` of the platform spec, or None."""
        config = self.platform.pipeline_config if self.platform is not None else None
        return config.workspace if config is not None else None
