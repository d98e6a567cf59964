"""Benchmark pipeline: one artifact, produced once, read by three consumers.

``produce(size_mib)`` writes ``size_mib`` MiB to an ``Output[Dataset]`` (in 1 MiB blocks,
never all in memory); ``consume-1..3`` each read the whole file through ``Input[Dataset]`` and
return what they saw: its size, a checksum of the bytes read, the file's inode and device,
and their own process's bytes written and peak memory (``/proc/self/io``, ``ru_maxrss``).
Same inode as the producer's file on every consumer = the artifact was read in place.

Compile: ``.venv-kfp/bin/python tools/compile_fixtures.py bench/fanout.py``.
Run by ``bench/artifact_fanout.py``.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11")
def produce(size_mib: int, data: Output[Dataset]) -> str:
    import os

    block = bytes(range(256)) * 4096  # 1 MiB
    with open(data.path, "wb") as out:
        for _ in range(size_mib):
            out.write(block)
    info = os.stat(data.path)
    return f"{info.st_dev}:{info.st_ino}"


@dsl.component(base_image="python:3.11")
def consume(data: Input[Dataset]) -> dict:
    import hashlib
    import os
    import resource

    digest, size = hashlib.sha256(), 0
    with open(data.path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            size += len(chunk)
            digest.update(chunk)
    info = os.stat(data.path)
    written = 0
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("write_bytes:"):
                written = int(line.split()[1])
    return {"size": size, "sha256": digest.hexdigest(), "file": f"{info.st_dev}:{info.st_ino}",
            "write_bytes": written, "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


@dsl.pipeline(name="fanout", description="One artifact read by three consumers (benchmark).")
def fanout(size_mib: int = 16) -> str:
    made = produce(size_mib=size_mib)
    for _ in range(3):
        consume(data=made.outputs["data"])
    return made.outputs["Output"]


PIPELINE = fanout
