"""Find out what a file is and load it into a :class:`Pipeline`.

Accepted inputs are listed in PRODUCT.md §1. Parsed pipelines are cached on disk
keyed by the content hash, because Airflow re-parses DAG files every 30 seconds in
fresh processes. Cache entries are JSON of the model (:mod:`airflow_kfx.spec.codec`),
never pickles, in a folder only this user can write; their key includes a digest of
this package's parser, so a changed parser never reads an old entry.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from airflow_kfx.exceptions import SpecError
from airflow_kfx.spec.model import Pipeline
from airflow_kfx.spec.source import decode_text, load_documents, relocate, root_node

PIPELINE_SUFFIXES = (".yaml", ".yml", ".json")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
# A packaged pipeline is one compiled file: KFP's own are kilobytes to a few megabytes.
# Bounds that a zip bomb hits long before it can stall DAG parsing or fill memory.
MAX_PACKAGE_BYTES = 64 * 1024 * 1024  # the archive file itself
MAX_MEMBER_BYTES = 32 * 1024 * 1024  # the pipeline inside, uncompressed
MAX_MEMBERS = 1000  # entries of any kind in the archive
MAX_COMPRESSION_RATIO = 200  # uncompressed / compressed size of the pipeline member

log = logging.getLogger(__name__)


def load_pipeline_file(path: str | os.PathLike[str], *, use_cache: bool = True) -> Pipeline:
    """Load and validate one pipeline file (YAML, JSON or a packaged archive)."""
    file = str(path)
    try:
        if file.endswith(ARCHIVE_SUFFIXES) and os.path.getsize(file) > MAX_PACKAGE_BYTES:
            raise SpecError(
                f"the package is larger than {MAX_PACKAGE_BYTES // 2**20} MB; a pipeline package holds one "
                "compiled pipeline file", file=file,
            )
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
    pipeline = load_pipeline_text(decode_text(data, file), file=file, digest=digest)
    if use_cache:
        _cache_put(digest, file, pipeline)
    return pipeline


def load_pipeline_text(text: str, *, file: str = "<text>", digest: str | None = None) -> Pipeline:
    """Load and validate pipeline text; ``file`` labels error messages."""
    from airflow_kfx.spec.ir import parse_pipeline_spec
    from airflow_kfx.spec.validate import validate_pipeline

    documents = load_documents(text, file)  # first: it refuses text that cannot be encoded
    digest = digest or hashlib.sha256(text.encode()).hexdigest()
    if not documents:
        raise SpecError("the file is empty; expected a compiled KFP pipeline (YAML or JSON)", file=file, line=1)
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
        # A KFP v2 backend-compiled workflow carries its PipelineSpec as JSON parameters:
        # rebuild it and parse it like a compiled YAML (v1 workflows are refused there).
        from airflow_kfx.spec.argo_v2 import rebuild_pipeline_spec

        rebuilt = rebuild_pipeline_spec(node)
        if len(documents) > 1:
            root_node(documents[1], file).fail("an Argo Workflow file holds one YAML document")
        try:
            platform = None
            platform_node = rebuilt.platform_node()
            if platform_node is not None:
                from airflow_kfx.spec.platform import parse_kubernetes_platform

                platform = parse_kubernetes_platform(platform_node)
            pipeline = rebuilt.finished(parse_pipeline_spec(rebuilt.spec_node(), digest, platform))
            validate_pipeline(pipeline)
        except SpecError as err:  # found in the rebuilt spec: point at the workflow
            raise rebuilt.relocate(err) from None
        return pipeline
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
    try:
        validate_pipeline(pipeline)
    except SpecError as err:
        raise relocate(err, first) from None
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
    """The one pipeline file inside a ``.zip``/``.tar.gz`` package, as KFP uploads accept.

    An archive is untrusted input to every DAG processor: more than one pipeline file,
    a link, a member over :data:`MAX_MEMBER_BYTES` or compressed more than
    :data:`MAX_COMPRESSION_RATIO` times, or more than :data:`MAX_MEMBERS` entries are
    refused before anything is decompressed beyond those bounds.
    """
    try:
        if file.endswith(".zip"):
            name, member = _zip_member(file, data)
        else:
            name, member = _tar_member(file, data)
    # zlib.error: corrupt deflate data; NotImplementedError: a compression method zipfile
    # lacks; RuntimeError: an encrypted member. All are the package's fault, not ours.
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError) as err:
        raise SpecError(f"cannot open the package: {err}", file=file) from None
    return name, member


def _one_candidate(file: str, names: list[str]) -> str:
    if len(names) != 1:
        found = ", ".join(sorted(names)) or "none"
        raise SpecError(f"a pipeline package must hold exactly one .yaml/.json file; found {found}", file=file)
    name = names[0]
    if name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
        raise SpecError(f"the package member {name!r} points outside the package; refused", file=file)
    return name


def _check_member(file: str, name: str, size: int, compressed: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise SpecError(
            f"{name} in the package is {size // 2**20} MB uncompressed; more than {MAX_MEMBER_BYTES // 2**20} MB "
            "is not a compiled pipeline", file=file,
        )
    if compressed and size / compressed > MAX_COMPRESSION_RATIO:
        raise SpecError(
            f"{name} in the package is compressed {size // compressed}:1, more than {MAX_COMPRESSION_RATIO}:1; "
            "refused as a possible zip bomb", file=file,
        )


def _read_bounded(handle: Any, name: str, file: str) -> bytes:
    """Read at most :data:`MAX_MEMBER_BYTES` (a header may lie about the size)."""
    content = handle.read(MAX_MEMBER_BYTES + 1)
    if len(content) > MAX_MEMBER_BYTES:
        raise SpecError(f"{name} in the package is larger than {MAX_MEMBER_BYTES // 2**20} MB", file=file)
    return content


def _zip_member(file: str, data: bytes) -> tuple[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise SpecError(f"the package has {len(infos)} entries; a pipeline package holds one file", file=file)
        for info in infos:
            if stat.S_ISLNK(info.external_attr >> 16):
                raise SpecError(f"the package holds a symbolic link ({info.filename}); refused", file=file)
        candidates = [i.filename for i in infos if not i.is_dir() and i.filename.endswith(PIPELINE_SUFFIXES)]
        info = archive.getinfo(_one_candidate(file, candidates))
        _check_member(file, info.filename, info.file_size, info.compress_size)
        with archive.open(info) as handle:
            return info.filename, _read_bounded(handle, info.filename, file)


def _tar_member(file: str, data: bytes) -> tuple[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        members = []
        for member in archive:  # streamed: a huge member list stops at the bound
            members.append(member)
            if len(members) > MAX_MEMBERS:
                raise SpecError(f"the package has more than {MAX_MEMBERS} entries", file=file)
            if member.issym() or member.islnk():
                raise SpecError(f"the package holds a link ({member.name}); refused", file=file)
        candidates = [m.name for m in members if m.isfile() and m.name.endswith(PIPELINE_SUFFIXES)]
        member = archive.getmember(_one_candidate(file, candidates))
        _check_member(file, member.name, member.size, len(data))
        handle = archive.extractfile(member)
        if handle is None:
            raise SpecError(f"cannot read {member.name} from the package", file=file)
        return member.name, _read_bounded(handle, member.name, file)


# ---------------------------------------------------------------------------
# Content-hash cache
# ---------------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("KFX_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "airflow-kfx"
    )
    return Path(base) / "specs"


@cache
def code_digest() -> str:
    """A digest of the parser's own source (this package's ``spec`` modules and its
    version): entries written by other parser code are never read."""
    from airflow_kfx.version import __version__

    digest = hashlib.sha256(__version__.encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def _cache_path(digest: str, file: str) -> Path:
    # The file label is part of the key: error locations and source_file name it.
    key = hashlib.sha256(f"{code_digest()}\0{digest}\0{file}".encode()).hexdigest()
    return cache_dir() / f"{key}.json"


def private_cache_dir() -> Path | None:
    """The cache folder, created private; None when it is not ours alone (then no caching:
    an entry decides what a DAG's pods run, so nobody else may be able to write one)."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
    except OSError:
        return None
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        _warn_shared(folder)
        return None
    return folder


@cache
def _warn_shared(folder: Path) -> None:
    log.warning(
        "not caching parsed pipelines in %s: it is writable by other users (or not ours); "
        "give it mode 0700 or set KFX_CACHE_DIR to a private folder", folder,
    )


def _cache_get(digest: str, file: str) -> Pipeline | None:
    from airflow_kfx.spec.codec import CodecError, loads

    if private_cache_dir() is None:
        return None
    try:
        pipeline = loads(_cache_path(digest, file).read_bytes())
    except (OSError, CodecError, RecursionError):
        return None
    return pipeline if isinstance(pipeline, Pipeline) else None


def _cache_put(digest: str, file: str, pipeline: Pipeline) -> None:
    from airflow_kfx.spec.codec import CodecError, dumps

    folder = private_cache_dir()
    if folder is None:
        return
    try:
        text = dumps(pipeline)
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(handle.name, _cache_path(digest, file))
    except (OSError, CodecError):
        pass  # a read-only home or a value JSON cannot hold: we just parse again next time
