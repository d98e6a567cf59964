"""Paths and helpers shared by the tests."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The KFP conformance corpus lives beside the repository (../shared/kfp-corpus).
CORPUS = Path(os.environ.get("KFX_KFP_CORPUS", REPO.parent / "shared" / "kfp-corpus"))
FIXTURES = REPO / "tests" / "fixtures" / "pipelines"
BROKEN = REPO / "tests" / "fixtures" / "broken"
VALID = CORPUS / "test_data" / "sdk_compiled_pipelines" / "valid"


@cache
def corpus_manifest() -> list[dict[str, Any]]:
    return json.loads((CORPUS / "corpus-manifest.json").read_text())["files"]


def corpus_files(*kinds: str) -> list[Path]:
    return [CORPUS / f["path"] for f in corpus_manifest() if f["kind"] in kinds]
