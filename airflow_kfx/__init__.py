"""airflow-kfx: run Kubeflow Pipelines (KFP) pipelines and components on Apache Airflow.

Public API (imported lazily, so ``import airflow_kfx`` stays cheap at DAG-parse time)::

    from airflow_kfx import load_pipeline, load_pipelines
"""

from __future__ import annotations

from typing import Any

from airflow_kfx.version import __version__

__all__ = [
    "load_pipeline",
    "load_pipelines",
    "load_component_from_text",
    "load_component_from_file",
    "load_component_from_url",
    "dag_param",
    "get_provider_info",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in ("load_pipeline", "load_pipelines"):
        from airflow_kfx import loading

        return getattr(loading, name)
    if name in ("load_component_from_text", "load_component_from_file", "load_component_from_url"):
        from airflow_kfx import components

        return getattr(components, name)
    if name == "dag_param":
        from airflow_kfx.params import dag_param

        return dag_param
    if name == "get_provider_info":
        from airflow_kfx.provider import get_provider_info

        return get_provider_info
    raise AttributeError(f"module 'airflow_kfx' has no attribute {name!r}")
