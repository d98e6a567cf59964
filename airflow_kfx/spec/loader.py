"""Find out what a file is and load it into a :class:`Pipeline`.

Accepted inputs are listed in PRODUCT.md §1. Parsed pipelines are cached on disk
keyed by the content hash, because Airflow re-parses DAG files every 30 seconds in
fresh processes.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_kfx.exceptions import SpecError
from airflow_kfx.spec.model import Pipeline
from airflow_kfx.spec.source import load_documents, root_node

PIPELINE_SUFFIXES = (".yaml", ".yml", ".json")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
# Bump when the model changes shape, so stale cache entries are never unpickled.
MODEL_VERSION = "1"


def load_pipeline_file(path: str | os.PathLike[str], *, use_cache: bool = True) -> Pipeline:
    """Load and validate one pipeline file (YAML, JSON or a packaged archive)."""
    file = str(path)
    try:
        data = Path(file).read_bytes()
    except OSError as err:
        raise SpecError(f"cannot read the file: {err.strerror}", file=file) from None
    if file.endswith(ARCHIVE_SUFFIXES):
        inner_name, data = _unpack_single_pipeline(file, data)
        file = f"{file}!{inner_name}"
    digest = hashlib.sha256(data).hexdigest()
    if use_cache:
        cached = _cache_get(digest, file)
        if cached is not None:
            return cached
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("not a UTF-8 text file; expected KFP YAML or JSON", file=file) from None
    pipeline = load_pipeline_text(text, file=file, digest=digest)
    if use_cache:
        _cache_put(digest, file, pipeline)
    return pipeline


def load_pipeline_text(text: str, *, file: str = "<text>", digest: str | None = None) -> Pipeline:
    """Load and validate pipeline text; ``file`` labels error messages."""
    from airflow_kfx.spec.ir import parse_pipeline_spec
    from airflow_kfx.spec.validate import validate_pipeline

    digest = digest or hashlib.sha256(text.encode()).hexdigest()
    documents = load_documents(text, file)
    if not documents:
        raise SpecError("the file is empty; expected a compiled KFP pipeline (YAML or JSON)", file=file)
    first = documents[0]
    if not isinstance(first, Mapping):
        raise SpecError(
            f"expected a mapping at the top of the file, got {type(first).__name__}; "
            "is this a compiled KFP pipeline?",
            file=file,
            line=1,
        )
    kind = detect_kind(first)
    node = root_node(first, file)
    if kind == "argo-workflow":
        node.unsupported(
            "Argo Workflow input",
            "Argo Workflow files (KFP v1 compiled pipelines and v2 backend workflows) are not "
            "translated yet; compile the pipeline with the KFP v2 SDK and use its YAML",
        )
    if kind == "v1-component":
        node.unsupported(
            "v1 component as a pipeline",
            "this is a KFP v1 component spec (component.yaml); load it with "
            "airflow_kfx.load_component_from_file and wire it into a DAG",
        )
    if kind != "pipeline-spec":
        node.fail(
            "not a KFP pipeline: expected a compiled PipelineSpec (with pipelineInfo, root, "
            "components, deploymentSpec); compile your pipeline with kfp.compiler.Compiler"
        )
    platform = None
    for extra in documents[1:]:
        extra_node = root_node(extra, file)
        if not (isinstance(extra, Mapping) and "platforms" in extra):
            extra_node.fail("a second YAML document must be the 'platforms' (kfp-kubernetes) spec")
        platforms = extra_node.child("platforms")
        for name, child in platforms.items():
            if name != "kubernetes":
                child.unsupported(f"platform '{name}'", f"only the 'kubernetes' platform spec is supported, not '{name}'")
        if platforms.has("kubernetes"):
            from airflow_kfx.spec.platform import parse_kubernetes_platform

            platform = parse_kubernetes_platform(platforms.child("kubernetes"))
    pipeline = parse_pipeline_spec(node, digest, platform)
    validate_pipeline(pipeline)
    return pipeline


def detect_kind(document: Mapping[str, Any]) -> str:
    """``pipeline-spec``, ``v1-component``, ``argo-workflow`` or ``unknown``."""
    from airflow_kfx.spec.ir import is_pipeline_spec

    if is_pipeline_spec(document):
        return "pipeline-spec"
    if "implementation" in document:
        return "v1-component"
    if document.get("kind") == "Workflow" or (
        "apiVersion" in document and str(document.get("apiVersion", "")).startswith("argoproj.io")
    ):
        return "argo-workflow"
    return "unknown"


def _unpack_single_pipeline(file: str, data: bytes) -> tuple[str, bytes]:
    """The one pipeline file inside a ``.zip``/``.tar.gz`` package, as KFP uploads accept."""
    members: dict[str, bytes] = {}
    try:
        if file.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if not info.is_dir() and info.filename.endswith(PIPELINE_SUFFIXES):
                        members[info.filename] = archive.read(info)
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                for member in archive.getmembers():
                    if member.isfile() and member.name.endswith(PIPELINE_SUFFIXES):
                        extracted = archive.extractfile(member)
                        if extracted is not None:
                            members[member.name] = extracted.read()
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as err:
        raise SpecError(f"cannot open the package: {err}", file=file) from None
    if len(members) != 1:
        found = ", ".join(sorted(members)) or "none"
        raise SpecError(
            f"a pipeline package must hold exactly one .yaml/.json file; found {found}", file=file
        )
    return next(iter(members.items()))


# ---------------------------------------------------------------------------
# Content-hash cache
# ---------------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("KFX_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "airflow-kfx"
    )
    return Path(base) / "specs"


def _cache_path(digest: str, file: str) -> Path:
    # The file label is part of the key: error locations and source_file name it.
    from airflow_kfx.version import __version__

    key = hashlib.sha256(f"{__version__}\0{MODEL_VERSION}\0{digest}\0{file}".encode()).hexdigest()
    return cache_dir() / f"{key}.pickle"


def _cache_get(digest: str, file: str) -> Pipeline | None:
    try:
        with open(_cache_path(digest, file), "rb") as handle:
            pipeline = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None
    return pipeline if isinstance(pipeline, Pipeline) else None


def _cache_put(digest: str, file: str, pipeline: Pipeline) -> None:
    target = _cache_path(digest, file)
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            pickle.dump(pipeline, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, target)
    except OSError:
        pass  # a read-only home is fine: we just parse again next time
