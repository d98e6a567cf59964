"""The ``kfx`` command: validate, render, run compiled KFP pipelines, and serve runs warm."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from airflow_kfx.exceptions import KfxError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kfx", description="Run Kubeflow Pipelines on Apache Airflow.")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="load files/folders and report every problem")
    validate.add_argument("paths", nargs="+", metavar="PATH")

    render = commands.add_parser("render", help="write the Kubernetes Pod manifest of each task")
    render.add_argument("path", metavar="PATH")
    render.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    render.add_argument("-o", "--output", required=True, metavar="DIR")

    run = commands.add_parser("run", help="run a pipeline once through Airflow (embedded default)")
    run.add_argument("path", metavar="PATH")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--runtime", choices=["local", "kubernetes"])
    run.add_argument("--experiment", metavar="NAME")
    run.add_argument("--no-cache", action="store_true", help="do not reuse results of earlier runs")
    run.add_argument("--json", dest="json_file", metavar="FILE", help="write the run summary as JSON")
    run.add_argument(
        "--parallelism", type=_positive_int, default=1, metavar="N",
        help="run up to N tasks at once through Airflow's LocalExecutor (default 1: one at a time, in-process, "
        "which is faster for short tasks)",
    )

    run.add_argument(
        "--no-serve", action="store_true",
        help="run in this process even when a warm process (kfx serve) serves this KFX_HOME",
    )

    serve = commands.add_parser(
        "serve", help="keep a warm process that runs `kfx run` requests for this KFX_HOME (start-up paid once)",
    )
    serve.add_argument("--max-runs", type=_positive_int, default=50, metavar="N",
                       help="start afresh after N runs (default 50)")
    serve.add_argument("--idle-timeout", type=_positive_int, metavar="SECONDS",
                       help="stop after SECONDS without a request (default: never)")

    args = parser.parse_args(argv)
    if args.command == "serve":
        from airflow_kfx.run import kfx_home
        from airflow_kfx.serve import serve as serve_runs

        return serve_runs(kfx_home(), args.max_runs, args.idle_timeout)
    if args.command == "run":
        from airflow_kfx.run import RunRequest, kfx_home
        from airflow_kfx.run import run as run_pipeline

        request = RunRequest(
            args.path, args.param, args.runtime, args.experiment, args.no_cache, args.json_file, args.parallelism
        )
        code = None
        if not args.no_serve:
            from airflow_kfx.serve_client import run_through_server

            code = run_through_server(request, kfx_home())
        if code is None:
            code = run_pipeline(request)
        # Skip the interpreter's final garbage collection of everything Airflow
        # loaded (2-3 s, measured in bench/RESULTS.md): nothing is left to clean up.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if args.command == "validate":
        return validate_command(args.paths)
    if args.command == "render":
        return render_command(args.path, args.param, args.output)
    parser.error(f"unknown command {args.command}")
    return 2


def validate_command(paths: Sequence[str]) -> int:
    from airflow_kfx.loading import file_dag_id, pipeline_files

    problems = 0
    checked = 0
    for given in paths:
        if not Path(given).exists():
            print(f"{given}: no such file or folder", file=sys.stderr)
            problems += 1
            continue
        owners: dict[str, Path] = {}  # DAG id → the file that has it (as load_pipelines assigns them)
        for path in pipeline_files(given):
            checked += 1
            error, dag_id = check_file(path)
            if error:
                problems += 1
                print(error, file=sys.stderr)
            elif dag_id in owners:
                renamed = file_dag_id(str(path.relative_to(given)) if Path(given).is_dir() else path.name)
                print(f"{path}: warning: its DAG id '{dag_id}' is {owners[dag_id]}'s; in a DAG folder it "
                      f"becomes DAG '{renamed}' (set dag_id in kfx.yaml to choose)")
            elif dag_id:
                owners[dag_id] = path
    print(f"checked {checked} file(s): {problems} problem(s)")
    return 1 if problems else 0


def check_file(path: Path) -> tuple[str | None, str | None]:
    """One line describing the file's problem (or None), and the DAG id it makes."""
    from airflow_kfx.dag_builder import build_dag
    from airflow_kfx.exceptions import UnsupportedFeatureError
    from airflow_kfx.spec.loader import ARCHIVE_SUFFIXES, load_pipeline_file

    try:
        try:
            pipeline = load_pipeline_file(path, use_cache=False)
        except UnsupportedFeatureError as err:
            if err.feature != "v1 component as a pipeline" or path.name.endswith(ARCHIVE_SUFFIXES):
                raise
            from airflow_kfx.components import load_component_from_file

            load_component_from_file(path)  # a KFP v1 component.yaml (YAML or JSON): validated as one
            return None, None
        # Airflow's own checks too (trigger rules, setup/teardown, params), as a DAG
        # processor would run them.
        dag = build_dag(pipeline)
        dag.validate()
    except KfxError as err:
        return str(err), None
    except Exception as err:  # a bug in airflow-kfx: still one line, never a traceback
        return f"{path}: internal error ({type(err).__name__}: {err}); please report it", None
    return None, dag.dag_id


def render_command(path: str, raw_params: Sequence[str], output: str) -> int:
    from airflow_kfx.params import parse_params
    from airflow_kfx.render import render_pipeline
    from airflow_kfx.spec.loader import load_pipeline_file

    try:
        pipeline = load_pipeline_file(path)
        params = parse_params(pipeline, raw_params)
        written = render_pipeline(pipeline, params, Path(output))
    except KfxError as err:
        print(str(err), file=sys.stderr)
        return 1
    for file in written:
        print(file)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

