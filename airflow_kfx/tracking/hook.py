"""The ``mlflow`` connection type and how airflow-kfx finds its tracking server.

Order: the Airflow connection (``[kfx] mlflow_conn_id``, default ``mlflow_default``),
then ``MLFLOW_TRACKING_URI``, then the embedded ``sqlite:///mlflow.db``.
Credentials come only from the connection and never reach logs or the pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook

EMBEDDED_TRACKING_URI = "sqlite:///mlflow.db"


@dataclass(frozen=True)
class TrackingTarget:
    tracking_uri: str = field(repr=False)  # may carry user:password@: shown as public_uri
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = ""  # where the URI came from, for log messages (never the secrets)

    @property
    def public_uri(self) -> str:
        """The tracking URI without any ``user:password@``: what logs, XComs, tags and
        task pods see (pods get credentials from a Kubernetes secret instead)."""
        return without_credentials(self.tracking_uri)

    def credential_env(self) -> dict[str, str]:
        """MLflow's own credential variables, for this process and task pods."""
        env = {}
        if self.username:
            env["MLFLOW_TRACKING_USERNAME"] = self.username
        if self.password:
            env["MLFLOW_TRACKING_PASSWORD"] = self.password
        if self.token:
            env["MLFLOW_TRACKING_TOKEN"] = self.token
        return env


class MlflowHook(BaseHook):
    """Connection to an MLflow tracking server (conn type ``mlflow``).

    Host (with scheme, port and path) is the tracking URI, e.g. ``http://mlflow:5000``;
    login/password are basic-auth credentials; extra ``{"token": ...}`` a bearer token;
    extra ``{"tracking_uri": ...}`` overrides the host (e.g. a ``sqlite://`` store).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema"],
            "relabeling": {"host": "Tracking URI", "login": "Username"},
            "placeholders": {"host": "http://mlflow:5000", "extra": '{"token": "..."}'},
        }

    def target(self) -> TrackingTarget:
        from airflow.exceptions import AirflowNotFoundException

        try:
            connection = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return fallback_target()
        extra = connection.extra_dejson or {}
        uri = extra.get("tracking_uri") or _uri_of(connection)
        if not uri:
            return fallback_target()
        return TrackingTarget(
            tracking_uri=uri,
            username=connection.login or None,
            password=connection.password or None,
            token=extra.get("token"),
            source=f"connection '{self.mlflow_conn_id}'",
        )


def without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return uri


def _uri_of(connection: Any) -> str:
    host = connection.host or ""
    if "://" in host:
        base = host
    elif host:
        scheme = connection.conn_type if connection.conn_type in ("http", "https") else "http"
        base = f"{scheme}://{host}"
    else:
        return ""
    if connection.port and f":{connection.port}" not in base:
        base = f"{base}:{connection.port}"
    return base.rstrip("/")


def fallback_target() -> TrackingTarget:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return TrackingTarget(uri, source="MLFLOW_TRACKING_URI")
    return TrackingTarget(EMBEDDED_TRACKING_URI, source="the embedded default")
