"""KFP's flip-coin sample with ``dsl.If`` / ``dsl.Elif`` / ``dsl.Else``, made reproducible by a seed.

What it shows:
  * a condition chain on an upstream string output: the "coin" lands heads
    (45 %), tails (45 %) or, so that there is an ``Else``, on its edge (10 %);
  * a nested ``dsl.If`` / ``dsl.Else`` on an int output inside the heads and the
    tails branches (the classic sample's "heads and > 5" messages);
  * ``dsl.OneOf`` over the three branches' outputs, fed to a last task whose
    result is the pipeline output.
Only the chosen branch's tasks run; everything else is skipped. The randomness
comes from ``random.Random(seed)``, so a given ``seed`` always gives the same run.

Expected result (pipeline output ``Output``, the result of the last task,
``print-msg-6``; and the nested branch's message):
  seed=1 (default) → flip "heads", random-num 6  → "heads and 6 > 4"  → "heads: 6"
  seed=3           → flip "heads", random-num 2  → "heads and 2 <= 4" → "heads: 2"
  seed=0           → flip "tails", random-num-2 19 → "tails and 19 > 15"  → "tails: 19"
  seed=5           → flip "tails", random-num-2 14 → "tails and 14 <= 15" → "tails: 14"
  seed=2           → flip "edge"  → "the coin landed on its edge"
"""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def flip_coin(seed: int) -> str:
    import random

    draw = random.Random(seed).random()
    side = "heads" if draw < 0.45 else "tails" if draw < 0.9 else "edge"
    print(f"seed {seed}: {side}")
    return side


@dsl.component(base_image="python:3.11")
def random_num(low: int, high: int, seed: int) -> int:
    import random

    number = random.Random(seed * 1000 + low).randint(low, high)
    print(f"random number in [{low}, {high}]: {number}")
    return number


@dsl.component(base_image="python:3.11")
def print_msg(msg: str) -> str:
    print(msg)
    return msg


@dsl.component(base_image="python:3.11")
def report(side: str, number: int) -> str:
    return f"{side}: {number}"


@dsl.pipeline(
    name="flip-coin",
    description="Seeded coin flip with If/Elif/Else, nested conditions and OneOf: KFP's flip-coin sample.",
)
def flip_coin_pipeline(seed: int = 1) -> str:
    flip = flip_coin(seed=seed)
    with dsl.If(flip.output == "heads"):
        heads_num = random_num(low=0, high=9, seed=seed)
        with dsl.If(heads_num.output > 4):
            print_msg(msg=f"heads and {heads_num.output} > 4")
        with dsl.Else():
            print_msg(msg=f"heads and {heads_num.output} <= 4")
        heads = report(side="heads", number=heads_num.output)
    with dsl.Elif(flip.output == "tails"):
        tails_num = random_num(low=10, high=19, seed=seed)
        with dsl.If(tails_num.output > 15):
            print_msg(msg=f"tails and {tails_num.output} > 15")
        with dsl.Else():
            print_msg(msg=f"tails and {tails_num.output} <= 15")
        tails = report(side="tails", number=tails_num.output)
    with dsl.Else():
        edge = print_msg(msg="the coin landed on its edge")
    result = print_msg(msg=dsl.OneOf(heads.output, tails.output, edge.output))
    return result.output


PIPELINE = flip_coin_pipeline
