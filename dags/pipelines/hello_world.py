"""KFP's classic hello-world sample: one container component greets a recipient.

Compile with ``make compile-fixtures`` (the real KFP SDK, in .venv-kfp).
Expected: the task prints ``Hello, <recipient>!`` and returns it as ``greeting``.
"""

from kfp import dsl


@dsl.container_component
def say_hello(recipient: str, greeting: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image="alpine:3.20",
        command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "Hello, %s!" "$0" | tee "$1"'],
        args=[recipient, greeting],
    )


@dsl.pipeline(name="hello-world", description="Greets a recipient: KFP's hello-world sample.")
def hello_world(recipient: str = "World") -> str:
    return say_hello(recipient=recipient).outputs["greeting"]


PIPELINE = hello_world
