"""The pipeline shape of bench/parse_folder.py: 12 container tasks with a condition, a
ParallelFor and an exit handler, as a typical drop-in pipeline has."""

from kfp import dsl


@dsl.container_component
def step(text: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image="alpine:3.20", command=["sh", "-c", 'echo "$0" > "$1"'], args=[text, out])


@dsl.pipeline(name="shape12")
def shape12(mode: str = "a"):
    final = step(text="exit")
    with dsl.ExitHandler(final, name="body"):
        first = step(text=mode)
        with dsl.If(first.output == "a"):
            left = step(text="left")
            step(text=left.output)
        with dsl.Else():
            step(text="right")
        # (over a constant: kfp 2.16 compiles a loop over a pipeline parameter inside an
        # ExitHandler without passing the parameter into the handler's DAG)
        with dsl.ParallelFor([1, 2, 3]):
            looped = step(text="item")
            looped.after(first)
            step(text=looped.output)
        chain = step(text="c1")
        for index in range(2, 6):
            chain = step(text=chain.output).set_display_name(f"chain-{index}")
        chain.after(first)


PIPELINE = shape12
