"""Benchmark pipeline: a linear chain of six lightweight Python components.

Each task adds a constant to its predecessor's output, so the component's own work
is nil and a run measures pure orchestration overhead: ``add-to(start, 1)`` →
``add-to-2(…, 2)`` → … → ``add-to-6(…, 6)``. Expected pipeline output with the
default ``start=0``: 21.

Compile: ``.venv-kfp/bin/python tools/compile_fixtures.py bench/chain6.py``.
Run by ``bench/run_vs_kfp_local.py`` with ``kfx run`` and with ``kfp.local``.
"""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def add_to(x: int, step: int) -> int:
    print(f"{x} + {step} = {x + step}")
    return x + step


@dsl.pipeline(name="chain6", description="Six lightweight components in a row (benchmark).")
def chain6(start: int = 0) -> int:
    value = add_to(x=start, step=1)
    for step in range(2, 7):
        value = add_to(x=value.output, step=step)
    return value.output


PIPELINE = chain6
