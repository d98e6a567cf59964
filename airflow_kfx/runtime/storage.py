"""Reading and writing small files under the pipeline root, local or object storage."""

from __future__ import annotations

import os


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def write_text(uri: str, text: str) -> None:
    if is_remote(uri):
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    local = uri.removeprefix("file://")
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with open(local, "w", encoding="utf-8") as handle:
        handle.write(text)


def read_text(uri: str) -> str:
    if is_remote(uri):
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(uri).read_text()
    with open(uri.removeprefix("file://"), encoding="utf-8") as handle:
        return handle.read()
