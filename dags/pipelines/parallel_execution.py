"""KFP's parallel-execution sample: ``dsl.ParallelFor`` fan-out and ``dsl.Collected`` fan-in.

What it shows:
  * a loop over a list given as a pipeline parameter (``numbers``), at most two
    iterations at a time (``parallelism=2``); each iteration squares its item;
  * ``dsl.Collected``: a task after the loop receives every iteration's output as
    one list and adds them up (the fan-in), and its result is the pipeline output;
  * a second loop over a static list of dicts, with sub-field access
    (``item.fruit`` / ``item.weight``), whose collected results are joined into a
    sorted report.

Expected result with the defaults (``numbers=[1, 2, 3, 4, 5]``):
  square ×5             → 1, 4, 9, 16, 25 (one per iteration)
  sum-all(Collected)    → 55, the pipeline output ``Output``
  describe-fruit ×3     → "apple x2", "banana x3", "cherry x5"
  join-sorted(Collected) → "apple x2, banana x3, cherry x5"
With ``-p numbers='[10, 20]'`` the output is 500.
"""

from typing import List

from kfp import dsl


@dsl.component(base_image="python:3.11")
def square(x: int) -> int:
    print(f"{x}^2 = {x * x}")
    return x * x


@dsl.component(base_image="python:3.11")
def sum_all(values: List[int]) -> int:
    # Iteration order is not guaranteed: only order-independent aggregation here.
    print(f"adding {sorted(values)}")
    return sum(values)


@dsl.component(base_image="python:3.11")
def describe_fruit(name: str, weight: str) -> str:
    return f"{name} x{weight}"


@dsl.component(base_image="python:3.11")
def join_sorted(texts: List[str]) -> str:
    return ", ".join(sorted(texts))


@dsl.pipeline(
    name="parallel-execution",
    description="ParallelFor over a list, fan-in with dsl.Collected: KFP's parallel-execution sample.",
)
def parallel_execution(numbers: List[int] = [1, 2, 3, 4, 5]) -> int:
    with dsl.ParallelFor(items=numbers, parallelism=2) as number:
        squared = square(x=number)
    total = sum_all(values=dsl.Collected(squared.output))

    # kfp types every item.<key> like the first dict's first value, so keep them all str;
    # and no key may be "name": `item.name` is the loop argument's own name attribute.
    fruits = [
        {"fruit": "apple", "weight": "2"},
        {"fruit": "banana", "weight": "3"},
        {"fruit": "cherry", "weight": "5"},
    ]
    with dsl.ParallelFor(items=fruits) as fruit:
        described = describe_fruit(name=fruit.fruit, weight=fruit.weight)
    join_sorted(texts=dsl.Collected(described.output))
    return total.output


PIPELINE = parallel_execution
