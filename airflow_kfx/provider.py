"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    from airflow_kfx.config import OPTIONS, SECTION
    from airflow_kfx.version import __version__

    return {
        "package-name": "airflow-kfx",
        "name": "Kubeflow Pipelines (airflow-kfx)",
        "description": "Run compiled Kubeflow Pipelines on Airflow as KubernetesPodOperator tasks.",
        "versions": [__version__],
        "connection-types": [
            {"hook-class-name": "airflow_kfx.tracking.hook.MlflowHook", "connection-type": "mlflow"},
        ],
        "extra-links": ["airflow_kfx.tracking.links.MlflowRunLink"],
        "config": {
            SECTION: {
                "description": "airflow-kfx: how KFP pipelines run and where their artifacts live.",
                "options": {
                    key: {
                        "description": description,
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": None,
                        "default": default,
                    }
                    for key, (default, description) in OPTIONS.items()
                },
            }
        },
    }
