"""Differences between the Airflow and provider versions we support, in one place
(as the cncf.kubernetes provider keeps its own in ``version_compat.py``).

Supported: Airflow 3.1+ and apache-airflow-providers-cncf-kubernetes 10.25+ (the first
with ``build_pod_request_obj(dry_run=...)``, which ``kfx render`` needs without a cluster,
and the persisted pod identity behind ``durable``/``reattach_on_restart``).
"""

from __future__ import annotations

try:  # Airflow 3: the Task SDK
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # pragma: no cover - Airflow 2 layout, kept for readers of older providers
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

__all__ = ["TaskDeferred"]
