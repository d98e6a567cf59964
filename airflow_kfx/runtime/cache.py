"""KFP execution caching: reuse an earlier successful execution's outputs.

A task whose ``cachingOptions.enableCache`` is true is looked up by its
fingerprint — the component's interface, the image, command and args as
compiled, the input parameter values, the input artifacts' URIs and metadata, and
the output specs — or by ``cacheKey`` when the pipeline sets one, as KFP does.
Entries live under the pipeline root (``<pipeline_root>/.kfx-cache/<key>.json``),
so every run and every worker that shares the pipeline root shares the cache, and
an entry is used only while the artifacts it points to still exist (metrics, whose
content is their metadata, have no file to check).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from airflow_kfx.runtime import storage
from airflow_kfx.spec.model import Component, Container

CACHE_FOLDER = ".kfx-cache"
# Artifacts whose content is their metadata: KFP's SDK writes no file for them (log_metric,
# log_confusion_matrix, ... only set metadata), so their URI never exists.
METADATA_ONLY = frozenset({"system.Metrics", "system.ClassificationMetrics", "system.SlicedClassificationMetrics"})


def fingerprint(
    component: Component,
    container: Container,
    parameters: Mapping[str, Any],
    artifacts: Mapping[str, list[Mapping[str, Any]]],
    cache_key: str | None = None,
) -> str:
    if cache_key:
        material: Any = {"cacheKey": cache_key}
    else:
        material = {
            "inputs": {
                "parameters": {n: s.type.value for n, s in sorted(component.inputs.parameters.items())},
                "artifacts": {n: s.schema_title for n, s in sorted(component.inputs.artifacts.items())},
            },
            "outputs": {
                "parameters": {n: s.type.value for n, s in sorted(component.outputs.parameters.items())},
                "artifacts": {n: s.schema_title for n, s in sorted(component.outputs.artifacts.items())},
            },
            "image": container.image,
            "command": list(container.command),
            "args": list(container.args),
            "parameterValues": dict(parameters),
            "artifactIdentities": {
                name: [{"uri": a.get("uri"), "metadata": a.get("metadata") or {}} for a in refs]
                for name, refs in artifacts.items()
            },
        }
    text = json.dumps(material, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(pipeline_root: str, key: str) -> str:
    return f"{pipeline_root.rstrip('/')}/{CACHE_FOLDER}/{key}.json"


def lookup(pipeline_root: str, key: str) -> dict[str, Any] | None:
    """The cached outputs, or None (no entry, unreadable, or an artifact is gone)."""
    try:
        outputs = json.loads(storage.read_text(_entry(pipeline_root, key)))
    except Exception:  # no entry, unreadable, not JSON, or an unreachable store: a miss
        return None
    if not isinstance(outputs, dict):
        return None
    from airflow_kfx.confine import is_reference, is_within

    for refs in (outputs.get("artifacts") or {}).values():
        for ref in refs:
            uri = str(ref.get("uri", ""))
            if is_reference(uri):
                continue  # an oci:// model image: a name, nothing to find under the root
            # Entries live under the root, where tasks write too: one naming anything
            # outside the root is not ours, and is never followed.
            if not is_within(uri, pipeline_root):
                return None
            if ref.get("schemaTitle") in METADATA_ONLY:
                continue  # no file to lose: the entry holds all of it
            if not _exists(uri):
                return None
    return outputs


def store(pipeline_root: str, key: str, outputs: Mapping[str, Any]) -> None:
    text = json.dumps({"parameters": outputs.get("parameters", {}), "artifacts": outputs.get("artifacts", {})}, default=str)
    try:
        storage.write_text(_entry(pipeline_root, key), text)  # local: write-then-rename
    except Exception:
        pass  # a cache we cannot write is a cache miss next time, not a failure


def _exists(uri: str) -> bool:
    try:
        return storage.exists(uri)
    except Exception:  # an unreachable store: do not trust the entry
        return False
