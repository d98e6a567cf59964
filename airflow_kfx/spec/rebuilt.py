"""What the Argo workflow loaders share: a spec rebuilt from a workflow remembers where
each of its parts came from, so an error found in the rebuilt spec points at the workflow.

Used by :mod:`airflow_kfx.spec.argo_v1` and :mod:`airflow_kfx.spec.argo_v2` (which
imports argo_v1, so neither can hold these for the other)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_kfx.spec.source import LineDict


@dataclass(frozen=True)
class Origin:
    """A part of the rebuilt spec (``ir_path``) and where the workflow holds it."""

    ir_path: str
    workflow_path: str
    line: int | None
    exact: bool = True  # False: the parts below ir_path are not at the same path in the workflow


def located(line: int | None, items: Mapping[str, Any] | None = None, /, **more: Any) -> LineDict:
    """A mapping for the rebuilt spec, placed at a workflow line (errors found in it point there)."""
    result = LineDict(items or {}, **more)
    result.line = line
    result.key_lines = dict.fromkeys(result, line)
    return result
