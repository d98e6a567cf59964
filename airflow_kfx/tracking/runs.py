"""MLflow runs for a DAG run: one parent run per DAG run, one nested run per task
execution (per map index for loop iterations, nested under the loop's run).

Idempotent: runs are found again by their ``kfx.*`` tags before anything is
created, so a retry, a cleared task or a re-run of the DAG run reuses its runs
(the try number is a tag) instead of duplicating them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_kfx.config import config_value
from airflow_kfx.tracking.session import TrackingSession

PIPELINE_KIND = "pipeline-run"
LOOP_KIND = "loop"
TASK_KIND = "task"
MAX_PARAM_LENGTH = 6000


@dataclass(frozen=True)
class RunRef:
    """Where a task's MLflow run is (what pods and links need)."""

    tracking_uri: str
    experiment_id: str
    run_id: str

    def pod_env(self) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_EXPERIMENT_ID": self.experiment_id,
            "MLFLOW_RUN_ID": self.run_id,
        }

    def ui_url(self) -> str:
        base = config_value("mlflow_ui_url")
        if not base:
            base = self.tracking_uri if self.tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def as_dict(self) -> dict[str, str]:
        return {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id, "run_id": self.run_id}


EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


# Each DAG run's experiment and parent run, once found or created in this process, by
# (tracking URI, experiment name, DAG id, run id). Under ``kfx run`` and ``kfx serve`` every
# task runs in one process: the rest skip two store calls each (the experiment by name, the
# parent by its tags). A worker process of a deployed Airflow runs one task: no change there.
_PARENTS: dict[tuple[str, str, str, str], tuple[str, str]] = {}


class PipelineTracking:
    """The MLflow side of one Airflow DAG run."""

    def __init__(self, session: TrackingSession, *, pipeline_name: str, digest: str, dag_id: str, run_id: str,
                 experiment: str | None) -> None:
        self.session = session
        self.pipeline_name = pipeline_name
        self.digest = digest
        self.dag_id = dag_id
        self.run_id = run_id
        self.experiment_name = experiment or pipeline_name
        self._experiment_id: str | None = None

    # -- lookup ---------------------------------------------------------------
    @property
    def client(self) -> Any:
        return self.session.client

    def experiment_id(self) -> str | None:
        if self._experiment_id is None:
            self._experiment_id = self.session.call("find or create the experiment", self._get_or_create_experiment)
        return self._experiment_id

    def _get_or_create_experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return str(found.experiment_id)
        try:
            # MLflow 3's UI opens an experiment without this tag in its GenAI (traces) view;
            # KFP experiments are model training: open the classic runs table.
            return str(self.client.create_experiment(self.experiment_name, tags={EXPERIMENT_KIND: MODEL_TRAINING}))
        except Exception:  # noqa: BLE001 - created meanwhile by another task
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _find(self, experiment_id: str, tags: Mapping[str, str]) -> Any:
        runs = self.client.search_runs([experiment_id], filter_string=tag_filter(tags), max_results=1, order_by=["attributes.start_time ASC"])
        return runs[0] if runs else None

    def _identity(self) -> dict[str, str]:
        return {"kfx.dag_id": self.dag_id, "kfx.run_id": self.run_id}

    # -- the parent run ---------------------------------------------------------
    def parent(self, params: Mapping[str, Any] | None = None) -> RunRef | None:
        """The DAG run's MLflow run, created (with params and tags) if missing."""
        key = (self.session.target.tracking_uri, self.experiment_name, self.dag_id, self.run_id)
        known = _PARENTS.get(key)
        if known is not None:
            return RunRef(self.session.target.public_uri, *known)
        experiment_id = self.experiment_id()
        if experiment_id is None:
            return None
        run = self.session.call("find or create the pipeline run", self._parent, experiment_id, params or {})
        if not run:
            return None
        _PARENTS[key] = (experiment_id, run)
        return RunRef(self.session.target.public_uri, experiment_id, run)

    def _parent(self, experiment_id: str, params: Mapping[str, Any]) -> str:
        found = self._find(experiment_id, {**self._identity(), "kfx.kind": PIPELINE_KIND})
        if found is not None:
            return str(found.info.run_id)
        airflow_url = airflow_run_url(self.dag_id, self.run_id)
        tags = {
            **self._identity(),
            "kfx.kind": PIPELINE_KIND,
            "kfx.pipeline": self.pipeline_name,
            "kfx.pipeline_digest": self.digest,
            "kfx.airflow_url": airflow_url,
            "mlflow.note.content": f"Airflow DAG run: [{self.dag_id} / {self.run_id}]({airflow_url})",
        }
        run = self.client.create_run(experiment_id, tags=tags, run_name=self.run_id)
        log_params(self.client, run.info.run_id, params)
        return str(run.info.run_id)

    def finish(self, failed: bool) -> None:
        ref = self.parent()
        if ref is not None:
            self.session.call("close the pipeline run", self.client.set_terminated, ref.run_id, "FAILED" if failed else "FINISHED")

    # -- nested runs -------------------------------------------------------------
    def nested(self, *, key: Mapping[str, str], name: str, parent: RunRef, tags: Mapping[str, str],
               params: Mapping[str, Any] | None = None, reopen: bool = True) -> RunRef | None:
        """A nested run found by ``key`` tags under ``parent``, else created; ``tags``
        refreshed. ``reopen``: a found run is RUNNING again (a task's retry)."""

        def find_or_create() -> str:
            identity = {**self._identity(), **key}
            found = self._find(parent.experiment_id, identity)
            if found is None:  # a new run: its tags with it, and no params to look up first
                all_tags = {**tag_values(tags), **identity, "mlflow.parentRunId": parent.run_id}
                run_id = str(self.client.create_run(parent.experiment_id, tags=all_tags, run_name=name).info.run_id)
                if params:
                    log_params(self.client, run_id, params, existing={})
                return run_id
            run_id = str(found.info.run_id)
            if reopen:
                self.client.update_run(run_id, status="RUNNING")
            log_tags(self.client, run_id, tags)
            if params:
                log_params(self.client, run_id, params)
            return run_id

        run = self.session.call(f"record {name}", find_or_create)
        return RunRef(parent.tracking_uri, parent.experiment_id, run) if run else None

    def loop(self, loop_task_id: str, name: str, parent: RunRef) -> RunRef | None:
        """A ParallelFor's run, the parent of its iterations' runs; each iteration finds
        it and leaves its status alone (:meth:`close_loops` ends it)."""
        return self.nested(key={"kfx.kind": LOOP_KIND, "kfx.loop": loop_task_id}, name=name, parent=parent,
                           tags={}, reopen=False)

    def close_loops(self, parent: RunRef) -> None:
        """At the end of the DAG run: every loop run of it FAILED when one of its
        iterations' runs failed, else FINISHED."""

        def close() -> None:
            loops = tag_filter({**self._identity(), "kfx.kind": LOOP_KIND})
            for loop in self.client.search_runs([parent.experiment_id], filter_string=loops, max_results=1000):
                failed = self.client.search_runs(
                    [parent.experiment_id], max_results=1,
                    filter_string=f"tags.`mlflow.parentRunId` = '{loop.info.run_id}' AND attributes.status = 'FAILED'",
                )
                self.client.set_terminated(loop.info.run_id, "FAILED" if failed else "FINISHED")

        self.session.call("close the loop runs", close)


def tag_filter(tags: Mapping[str, str]) -> str:
    """An MLflow search filter matching every one of ``tags``."""
    return " AND ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())


def log_params(client: Any, run_id: str, params: Mapping[str, Any], existing: Mapping[str, str] | None = None) -> None:
    """Params as MLflow keeps them: lists/dicts JSON-encoded, long values truncated,
    batches of 100; a param already logged with the same value is left alone
    (``existing``: the run's params, when known; else they are read)."""
    from mlflow.entities import Param

    if existing is None:
        existing = client.get_run(run_id).data.params
    entries = []
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        if len(text) > MAX_PARAM_LENGTH:
            text = text[: MAX_PARAM_LENGTH - 20] + "…[truncated]"
        if name in existing:
            continue  # MLflow params are immutable; a retry logs the same inputs
        entries.append(Param(str(name)[:250], text))
    for start in range(0, len(entries), 100):
        client.log_batch(run_id, params=entries[start:start + 100])


def tag_values(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as MLflow keeps them: text, at most 8,000 characters; None values left out."""
    return {str(k): str(v)[:8000] for k, v in tags.items() if v is not None}


def log_tags(client: Any, run_id: str, tags: Mapping[str, Any]) -> None:
    from mlflow.entities import RunTag

    entries = [RunTag(k, v) for k, v in tag_values(tags).items()]
    for start in range(0, len(entries), 100):
        client.log_batch(run_id, tags=entries[start:start + 100])


def airflow_run_url(dag_id: str, run_id: str) -> str:
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or "http://localhost:8080"
    except Exception:  # noqa: BLE001
        base = "http://localhost:8080"
    return f"{base.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
