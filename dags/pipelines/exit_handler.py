"""KFP's exit-handler sample: a clean-up task that runs whatever happens to the body.

What it shows:
  * ``with dsl.ExitHandler(exit_task=...)`` around a two-task body;
  * the exit task takes a ``dsl.PipelineTaskFinalStatus`` input and reports the
    body's final state (and error, if any);
  * a ``fail`` parameter that makes the body's second task raise, to see the
    exit task still run.

Expected result:
  default (``fail=false``):
    get-message("kfx") → "Hello, kfx!"; check-message → "HELLO, KFX!"
    exit-op            → "exit handler: COMPLETE"; the run succeeds.
  ``-p fail=true``:
    check-message fails (ValueError: asked to fail);
    exit-op still runs → "exit handler: FAILED" (it prints the error: code 2,
    "failed tasks: exit-handler-1.check-message"); the run fails (exit code 1).
"""

from kfp import dsl


@dsl.component(base_image="python:3.11")
def get_message(name: str) -> str:
    return f"Hello, {name}!"


@dsl.component(base_image="python:3.11")
def check_message(message: str, fail: bool) -> str:
    if fail:
        raise ValueError("asked to fail")
    return message.upper()


@dsl.component(base_image="python:3.11")
def exit_op(status: dsl.PipelineTaskFinalStatus) -> str:
    print("pipeline task:", status.pipeline_task_name)
    print("state:", status.state)
    print("error:", status.error_code, status.error_message)
    return f"exit handler: {status.state}"


@dsl.pipeline(
    name="exit-handler",
    description="An exit task that runs after the body, success or failure: KFP's exit-handler sample.",
)
def exit_handler(name: str = "kfx", fail: bool = False):
    exit_task = exit_op()
    with dsl.ExitHandler(exit_task=exit_task, name="main"):
        message = get_message(name=name)
        check_message(message=message.output, fail=fail)


PIPELINE = exit_handler
