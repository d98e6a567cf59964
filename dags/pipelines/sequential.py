"""KFP's sequential (producer-consumer) sample: a parameter and an artifact flow from one task to the next.

What it shows:
  * ``produce`` writes ``count`` numbered lines of ``message`` to an
    ``Output[Dataset]`` (with artifact metadata) and also returns a parameter,
    the number of characters written, through a ``NamedTuple`` output;
  * ``consume`` reads that Dataset (``Input[Dataset]``) and checks it against the
    parameter it receives from the same producer, so it runs strictly after it;
  * ``announce`` has no data dependency and is ordered with ``.after(consume)``;
  * the consumer's result is the pipeline output.

Expected result with the defaults (``message="hello"``, ``count=3``):
  produce   → Dataset "1: hello\\n2: hello\\n3: hello\\n" (metadata lines=3),
              chars=27
  consume   → "3 lines, 27 chars, last: 3: hello" (the pipeline output ``Output``)
  announce  → "done after consume"
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11")
def produce(message: str, count: int, data: Output[Dataset]) -> NamedTuple("Produced", [("chars", int)]):
    from collections import namedtuple

    text = "".join(f"{i}: {message}\n" for i in range(1, count + 1))
    with open(data.path, "w") as f:
        f.write(text)
    data.metadata["lines"] = count
    print(f"wrote {count} lines to {data.path}")
    return namedtuple("Produced", ["chars"])(len(text))


@dsl.component(base_image="python:3.11")
def consume(data: Input[Dataset], chars: int) -> str:
    with open(data.path) as f:
        text = f.read()
    if len(text) != chars:
        raise ValueError(f"expected {chars} characters, read {len(text)}")
    lines = text.splitlines()
    return f"{len(lines)} lines, {chars} chars, last: {lines[-1]}"


@dsl.component(base_image="python:3.11")
def announce(what: str) -> str:
    print(what)
    return what


@dsl.pipeline(
    name="sequential",
    description="A producer passes a parameter and a Dataset to a consumer: KFP's sequential sample.",
)
def sequential(message: str = "hello", count: int = 3) -> str:
    produced = produce(message=message, count=count)
    consumed = consume(data=produced.outputs["data"], chars=produced.outputs["chars"])
    announce(what="done after consume").after(consumed)
    return consumed.output


PIPELINE = sequential
