"""An MLflow client that never stalls or fails a pipeline unless asked to.

Requests get a short timeout and no retries (``[kfx] mlflow_timeout``). When the
tracking server cannot be reached, the first failure is logged as a warning and
every later call in this task is skipped at once, so an outage costs a task a few
seconds, not minutes. ``[kfx] mlflow_strict = true`` turns failures into errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from airflow_kfx.config import config_value
from airflow_kfx.exceptions import TaskRuntimeError
from airflow_kfx.tracking.hook import MlflowHook, TrackingTarget, fallback_target

log = logging.getLogger("airflow_kfx.tracking")
T = TypeVar("T")


def tracking_enabled() -> bool:
    return config_value("tracking").strip().lower() not in ("false", "0", "no", "off")


def resolve_target() -> TrackingTarget:
    """Connection, then MLFLOW_TRACKING_URI, then the embedded SQLite store (made absolute,
    so task subprocesses in other folders log into the same file)."""
    try:
        target = MlflowHook(config_value("mlflow_conn_id")).target()
    except Exception:  # noqa: BLE001 - no metadata DB / connection backend: use the fallback
        target = fallback_target()
    uri = target.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + os.path.abspath(uri[len("sqlite:///"):])
    return TrackingTarget(uri, target.username, target.password, target.token, target.source)


class TrackingSession:
    """An ``MlflowClient`` plus outage handling for one task execution."""

    def __init__(self, target: TrackingTarget | None = None, *, strict: bool | None = None) -> None:
        self.target = target or resolve_target()
        self.strict = strict if strict is not None else config_value("mlflow_strict").strip().lower() == "true"
        self.down: str | None = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            timeout = config_value("mlflow_timeout")
            # Read by MLflow per request: bounded waits, no retry storms.
            os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = timeout
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.target.tracking_uri)
        return self._client

    def call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``function(*args)``; on failure: raise if strict, else warn once and return None."""
        if self.down is not None:
            return None
        try:
            with _credentials(self.target.credential_env()):
                return function(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any client/server/network failure
            message = self._redacted(
                f"MLflow tracking ({self.target.public_uri}) failed to {what}: {type(err).__name__}: {_short(err)}"
            )
            if self.strict:
                raise TaskRuntimeError(message + " ([kfx] mlflow_strict is on)") from None
            if _is_outage(err):
                log.warning("%s; the pipeline goes on without tracking this task", message)
                self.down = message  # skip the rest at once: no more waiting on a dead server
            else:
                log.warning("%s; the pipeline goes on", message)
            return None

    def _redacted(self, text: str) -> str:
        """``text`` with the connection's secrets (and a URI's user:password@) masked:
        client errors quote the URL they failed on."""
        import re

        text = re.sub(r"(https?://)[^/@\s]+@", r"\1", text)
        for secret in (self.target.password, self.target.token):
            if secret:
                text = text.replace(secret, "***")
        return text


@contextlib.contextmanager
def _credentials(env: Mapping[str, str]) -> Iterator[None]:
    """MLflow reads its credentials from the environment on each request: set them only
    for the duration of a call, so the worker's environment never keeps them."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _is_outage(err: Exception) -> bool:
    """The server cannot be reached (as opposed to one request being refused)."""
    import requests

    if isinstance(err, (ConnectionError, TimeoutError, requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    text = str(err).lower()
    return any(word in text for word in ("max retries", "connection refused", "timed out", "failed to establish", "database is locked"))


def _short(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return text[:300]
