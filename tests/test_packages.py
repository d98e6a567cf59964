"""Packaged pipelines (``.zip``, ``.tar.gz``, ``.tgz``): what KFP's upload accepts, and
nothing a hostile archive could use to stall or fool a DAG processor."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from airflow_kfx.exceptions import SpecError
from airflow_kfx.spec import loader
from airflow_kfx.spec.loader import load_pipeline_file
from tests.support import FIXTURES

PIPELINE = (FIXTURES / "loops.yaml").read_bytes()


def make_zip(path: Path, members: dict[str, bytes], *, links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)  # a symbolic link
            archive.writestr(info, "/etc/passwd")
    return path


def make_tar(path: Path, members: dict[str, bytes], *, link: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return path


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz", ".tgz"])
def test_a_package_with_one_pipeline_loads_as_that_pipeline(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"loops{suffix}"
    members = {"pipeline.yaml": PIPELINE, "README.md": b"notes"}
    make_zip(path, members) if suffix == ".zip" else make_tar(path, members)
    pipeline = load_pipeline_file(path, use_cache=False)
    plain = load_pipeline_file(FIXTURES / "loops.yaml", use_cache=False)
    assert pipeline.source_file == f"{path}!pipeline.yaml"
    containers = {label: executor.container for label, executor in pipeline.executors.items()}
    assert (pipeline.name, pipeline.digest) == (plain.name, plain.digest)
    assert containers == {label: executor.container for label, executor in plain.executors.items()}


@pytest.mark.parametrize(("members", "message"), [
    ({"a.yaml": PIPELINE, "b.yaml": PIPELINE}, "exactly one .yaml/.json file; found a.yaml, b.yaml"),
    ({"README.md": b"nothing"}, "exactly one .yaml/.json file; found none"),
    ({"../../etc/cron.d/x.yaml": PIPELINE}, "points outside the package"),
])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_packages_that_are_not_one_pipeline_are_refused(tmp_path: Path, members: dict[str, bytes],
                                                       message: str, kind: str) -> None:
    path = make_zip(tmp_path / "p.zip", members) if kind == "zip" else make_tar(tmp_path / "p.tar.gz", members)
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        load_pipeline_file(path, use_cache=False)


def test_links_in_a_package_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="symbolic link"):
        load_pipeline_file(make_zip(tmp_path / "p.zip", {"p.yaml": PIPELINE}, links=("x.yaml",)), use_cache=False)
    with pytest.raises(SpecError, match="link"):
        load_pipeline_file(make_tar(tmp_path / "p.tar.gz", {"p.yaml": PIPELINE}, link="x.yaml"), use_cache=False)


def test_a_zip_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """30 MB of zeros compress to ~30 KB: refused by its ratio, before decompressing."""
    path = make_zip(tmp_path / "bomb.zip", {"p.yaml": b"\0" * (30 * 2**20)})
    assert os.path.getsize(path) < 2**20
    with pytest.raises(SpecError, match="compressed .*:1.*zip bomb"):
        load_pipeline_file(path, use_cache=False)


def test_a_member_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_MEMBER_BYTES", len(PIPELINE) - 1)
    with pytest.raises(SpecError, match="uncompressed|larger than"):
        load_pipeline_file(make_tar(tmp_path / "p.tar.gz", {"p.yaml": PIPELINE}), use_cache=False)


def test_a_member_lying_about_its_size_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A header may understate the size: reading stops at the limit whatever it says."""
    monkeypatch.setattr(loader, "MAX_MEMBER_BYTES", 1000)
    monkeypatch.setattr(loader, "_check_member", lambda *args: None)  # as if the header said 10 bytes
    with pytest.raises(SpecError, match="larger than"):
        load_pipeline_file(make_zip(tmp_path / "p.zip", {"p.yaml": PIPELINE}), use_cache=False)


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    path.write_bytes(PIPELINE)
    with pytest.raises(SpecError, match="cannot open the package"):
        load_pipeline_file(path, use_cache=False)


def _corrupt_deflate_tar(path: Path) -> Path:
    """Deflate data that zlib refuses mid-stream, after the tar headers were read (what the
    fuzzer found: "invalid distance too far back" escaping from gzip's seek): the last byte
    flip of a fixed archive that makes zlib fail."""
    import gzip
    import zlib

    data = make_tar(path, {"p.yaml": PIPELINE}).read_bytes()
    raw = gzip.decompress(data)
    fixed = gzip.compress(raw, mtime=0)
    for offset in range(len(fixed) - 9, 10, -1):
        damaged = bytearray(fixed)
        damaged[offset] ^= 0x55
        try:
            gzip.decompress(bytes(damaged))
        except zlib.error:
            path.write_bytes(bytes(damaged))
            return path
        except (OSError, EOFError):
            continue
    raise AssertionError("no flip made zlib fail")


def _unknown_compression_zip(path: Path) -> Path:
    data = bytearray(make_zip(path, {"p.yaml": PIPELINE}).read_bytes())
    data[8:10] = (99).to_bytes(2, "little")  # the local header's method: AES (zipfile lacks it)
    central = data.rindex(b"PK\x01\x02")
    data[central + 10:central + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make", [_corrupt_deflate_tar, _unknown_compression_zip], ids=["corrupt-gzip", "zip-method-99"])
def test_damaged_packages_are_a_clear_error(tmp_path: Path, make) -> None:
    """Found by tests/test_fuzz_loaders.py: zlib and zipfile errors are the package's fault."""
    path = make(tmp_path / ("p.tar.gz" if make is _corrupt_deflate_tar else "p.zip"))
    with pytest.raises(SpecError, match="cannot open the package") as raised:
        load_pipeline_file(path, use_cache=False)
    assert str(raised.value).startswith(str(path))
