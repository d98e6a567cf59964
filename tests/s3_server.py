"""A real S3 API (moto's server mode) on 127.0.0.1 for tests.

moto's ``ThreadedMotoServer`` serves HTTP from a thread of the test process on a free
port, so other processes (the launcher run as a subprocess, a task pod run by the
``local`` runtime, ``kfx run``) reach it over TCP exactly as they would reach MinIO or
S3. Each server starts with one bucket; tests that need isolation make their own with
:meth:`S3Server.new_bucket`.

    with S3Server() as s3:
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = s3.airflow_conn
        subprocess.run([...], env={**os.environ, **s3.launcher_env})
        s3.client.get_object(Bucket=s3.bucket, Key="k")

:func:`shared_server` is one server per test process (started on first use, stopped at
exit), for modules that cannot each start their own: Airflow caches the filesystem of
a connection id for the whole process, so every test using ``aws_default`` must talk
to the same endpoint.
"""

from __future__ import annotations

import atexit
import itertools
import json
import threading
from typing import Any

ACCESS_KEY = "kfx-test-access-key"
SECRET_KEY = "kfx-test-secret-key"
REGION = "us-east-1"

_counter = itertools.count(1)


class S3Server:
    def __init__(self, bucket: str = "kfx-test") -> None:
        self.bucket = bucket
        self.endpoint = ""
        self._server: Any = None
        self._client: Any = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> S3Server:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.endpoint = f"http://{host}:{port}"
        self.client.create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests use -------------------------------------------------------
    @property
    def client(self) -> Any:
        """A boto3 S3 client of this server, for set-up and assertions."""
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY, region_name=REGION,
            )
        return self._client

    @property
    def connection(self) -> dict[str, Any]:
        """An Airflow ``aws`` connection to this server (keys as login/password)."""
        return {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"endpoint_url": self.endpoint, "region_name": REGION},
        }

    @property
    def airflow_conn(self) -> str:
        """The value for ``AIRFLOW_CONN_AWS_DEFAULT`` (Airflow's JSON connection form)."""
        return json.dumps(self.connection)

    @property
    def launcher_env(self) -> dict[str, str]:
        """The environment the launcher reads its credentials from."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
        }

    def new_bucket(self, prefix: str = "kfx") -> str:
        name = f"{prefix}-{next(_counter)}"
        self.client.create_bucket(Bucket=name)
        return name

    def put(self, key: str, body: bytes | str, bucket: str | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.client.put_object(Bucket=bucket or self.bucket, Key=key, Body=data)

    def get(self, key: str, bucket: str | None = None) -> bytes:
        return self.client.get_object(Bucket=bucket or self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str = "", bucket: str | None = None) -> list[str]:
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket or self.bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)


_shared: S3Server | None = None
_lock = threading.Lock()


def shared_server() -> S3Server:
    """One running server for the whole test process (stopped when it exits)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = S3Server().start()
            atexit.register(_shared.stop)
        return _shared
