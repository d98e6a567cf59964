"""A hand-written Airflow DAG wiring KFP v1 components (dags/components/*.yaml)
with a plain Airflow task, KFP-style.

make-numbers(count=4) → [1, 2, 3, 4]; the plain task doubles them → [2, 4, 6, 8];
sum-numbers(offset=10) → 30; write-report → a Markdown artifact; count-lines → 3.
"""

from pathlib import Path

from airflow.sdk import DAG, Param, task

from airflow_kfx import dag_param, load_component_from_file

COMPONENTS = Path(__file__).parent / "components"
make_numbers_op = load_component_from_file(COMPONENTS / "make_numbers.yaml")
sum_numbers_op = load_component_from_file(COMPONENTS / "sum_numbers.yaml")
write_report_op = load_component_from_file(COMPONENTS / "write_report.yaml")
count_lines_op = load_component_from_file(COMPONENTS / "count_lines.yaml")


@task
def double_all(numbers: str) -> list[int]:
    """A plain Airflow task between components: v1 outputs arrive as text."""
    import json

    return [2 * n for n in json.loads(numbers)]


with DAG(
    "kfx_hand_written",
    schedule=None,
    params={"title": Param("Numbers", type="string")},
    tags=["kfp", "example"],
    doc_md=__doc__,
) as dag:
    numbers = make_numbers_op(task_id="make-numbers", count=4)
    doubled = double_all(numbers.outputs["numbers"])
    total = sum_numbers_op(task_id="sum-numbers", numbers=doubled, offset=10)
    report = write_report_op(task_id="write-report", total=total.output, title=dag_param("title"))
    count_lines_op(task_id="count-lines", text=report.outputs["report"])
