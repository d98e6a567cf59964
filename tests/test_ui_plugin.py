"""The UI plugin through Airflow's real api-server (simple auth manager, multi-team mode,
PostgreSQL, scheduler with LocalExecutor, local runtime).

Users: ``admin``; ``alice``, a viewer of the DAGs no team owns; the ``finance`` team owns
the DAG bundle holding ``finance_report``. Every plugin route is refused to an anonymous
caller; a viewer reads outputs but may not upload; nobody outside ``finance`` reads
``finance_report``'s outputs. Uploads are checked as ``kfx validate`` checks them before
anything is written, land whole, replace the earlier version of the same pipeline, and
Airflow's DAG versioning keeps the version each run ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_stack import AirflowStack, airflow_stack
from tests.support import REPO, launch_chromium

pytestmark = pytest.mark.slow

HELLO = REPO / "dags" / "pipelines" / "hello_world.yaml"
TRAINING = REPO / "dags" / "pipelines" / "training.yaml"
OUTPUT = REPO / "test-output"  # screenshots (README: "Run outputs and uploads in Airflow's UI")
PASSWORDS = {"admin": "admin-pw", "alice": "alice-pw"}
LOADER = "from airflow_kfx import load_pipelines\nload_pipelines({folder!r}, globals())\n"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


class Client:
    """The api-server as one user sees it (a bearer token; anonymous without one)."""

    def __init__(self, stack: AirflowStack, user: str | None) -> None:
        import requests

        self.base = f"http://127.0.0.1:{stack.env['AIRFLOW__API__PORT']}"
        self.session = requests.Session()
        if user is not None:
            answer = requests.post(f"{self.base}/auth/token", json={"username": user, "password": PASSWORDS[user]},
                                   timeout=30)
            answer.raise_for_status()
            self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.session.get(self.base + path, timeout=60, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.session.post(self.base + path, timeout=120, **kwargs)

    def upload(self, name: str, data: bytes) -> Any:
        return self.post("/kfx/upload", files={"file": (name, data)}, headers={"Accept": "application/json"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("ui")
    uploads = home / "airflow" / "dags" / "pipelines"
    uploads.mkdir(parents=True)
    finance = home / "finance"
    finance.mkdir()
    (finance / "finance.py").write_text(
        f"from airflow_kfx import load_pipeline\ndag = load_pipeline({str(HELLO)!r}, dag_id='finance_report')\n")
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,alice:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
            {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
            {"name": "finance", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(finance)}, "team_name": "finance"},
        ]),
        "AIRFLOW__KFX__RUNTIME": "local",
        "AIRFLOW__KFX__PIPELINE_ROOT": str(home / "artifacts"),
        "AIRFLOW__KFX__TRACKING": "false",
        "AIRFLOW__KFX__UPLOAD_FOLDER": str(uploads),
        "AIRFLOW__KFX__UPLOAD_MAX_MB": "1",
    }
    with airflow_stack(home / "airflow", dags={"kfx_dags.py": LOADER.format(folder=str(uploads))}, env=env,
                       setup=[("teams", "create", "finance")]) as running:
        running.wait_for_api()
        yield running


def _versions(stack: AirflowStack, dag_id: str) -> list[tuple[int, str]]:
    return stack.query("select version_number, id::text from dag_version where dag_id = %s order by version_number",
                       dag_id)


def test_plugin_routes_refuse_anonymous_and_unauthorised_callers(stack: AirflowStack) -> None:
    admin, alice, anonymous = Client(stack, "admin"), Client(stack, "alice"), Client(stack, None)
    stack.wait_for_dag("finance_report")
    status, body = stack.rest("GET", "/api/v2/version")  # the stack answers; now the plugin
    assert status == 200
    run = admin.post("/api/v2/dags/finance_report/dagRuns", json={"logical_date": None, "conf": {}})
    assert run.status_code == 200, run.text
    finance_run = run.json()["dag_run_id"]
    for path in (f"/kfx/runs/finance_report/{finance_run}", f"/kfx/api/runs/finance_report/{finance_run}",
                 f"/kfx/runs/finance_report/{finance_run}/tasks/say-hello", "/kfx/upload"):
        assert anonymous.get(path).status_code in (401, 403), path
    assert admin.get(f"/kfx/api/runs/finance_report/{finance_run}").status_code == 200
    refused = alice.get(f"/kfx/api/runs/finance_report/{finance_run}")  # the finance team's DAG
    assert refused.status_code == 403, refused.text
    assert alice.get(f"/kfx/runs/finance_report/{finance_run}/artifact", params={"uri": "/etc/passwd"}).status_code == 403
    assert alice.get("/kfx/upload").status_code == 403  # a viewer may not edit DAGs
    assert alice.upload("hello_world.yaml", HELLO.read_bytes()).status_code == 403
    assert anonymous.upload("hello_world.yaml", HELLO.read_bytes()).status_code in (401, 403)
    assert not any(Path(stack.env["AIRFLOW__KFX__UPLOAD_FOLDER"]).iterdir())


def test_uploads_are_checked_before_anything_is_written(stack: AirflowStack) -> None:
    admin = Client(stack, "admin")
    folder = Path(stack.env["AIRFLOW__KFX__UPLOAD_FOLDER"])
    broken = admin.upload("broken.yaml", HELLO.read_bytes().replace(b"comp-say-hello:", b"comp-say-hallo:", 1))
    assert broken.status_code == 422
    assert broken.json()["error"].startswith("broken.yaml") and "comp-say-hello" in broken.json()["error"]
    big = admin.upload("big.yaml", b"#" * (1024 * 1024 + 1))
    assert big.status_code == 413 and "upload_max_mb" in big.json()["error"]
    for name in ("../escape.yaml", "sub/dir.yaml", ".hidden.yaml"):
        refused = admin.upload(name, HELLO.read_bytes())
        assert refused.status_code == 400, (name, refused.text)
    forged = admin.post("/kfx/upload", files={"file": ("h.yaml", HELLO.read_bytes())},
                        headers={"Origin": "http://evil.example", "Accept": "application/json"})
    assert forged.status_code == 403
    assert list(folder.iterdir()) == []  # nothing written, not even a temporary file
    assert not (folder.parent / "escape.yaml").exists()


def test_a_new_version_replaces_the_file_and_older_runs_keep_theirs(stack: AirflowStack) -> None:
    admin, alice = Client(stack, "admin"), Client(stack, "alice")
    folder = Path(stack.env["AIRFLOW__KFX__UPLOAD_FOLDER"])
    first = admin.upload("hello.yaml", HELLO.read_bytes())
    assert first.status_code == 200, first.text
    assert first.json()["dag_id"] == "hello_world" and not first.json()["replaced"]
    assert sorted(p.name for p in folder.iterdir()) == ["hello_world.yaml"]
    stack.wait_for_dag("hello_world", timeout=120)
    run_id = stack.trigger("hello_world")
    assert stack.wait_for_run("hello_world", run_id, timeout=300) == "success", stack.logs()

    outputs = alice.get(f"/kfx/api/runs/hello_world/{run_id}").json()
    (task,) = [t for t in outputs["tasks"] if t["task_id"] == "say-hello"]
    assert task["parameters"] == [["greeting", "Hello, World!"]]
    assert outputs["pipeline_root"] == stack.env["AIRFLOW__KFX__PIPELINE_ROOT"] and outputs["root_recorded"]
    page = alice.get(f"/kfx/runs/hello_world/{run_id}/tasks/say-hello", params={"map_index": "-1"})
    assert page.status_code == 200 and "Hello, World!" in page.text
    assert "script-src" not in page.headers["Content-Security-Policy"]  # no script on the page

    second = admin.upload("hello_world.yaml", HELLO.read_bytes().replace(b"defaultValue: World", b"defaultValue: KFP"))
    assert second.status_code == 200 and second.json()["replaced"], second.text
    assert sorted(p.name for p in folder.iterdir()) == ["hello_world.yaml"]
    stack.wait_for(lambda: len(_versions(stack, "hello_world")) == 2, "version 2 of hello_world", timeout=120)
    (v1, id1), (v2, _) = _versions(stack, "hello_world")
    ran = stack.query("select created_dag_version_id::text from dag_run where run_id = %s", run_id)[0][0]
    assert (v1, v2, ran) == (1, 2, id1)  # the earlier run keeps the version it ran
    listing = admin.get("/kfx/upload").text
    assert "hello_world" in listing and "v2 (" in listing and "v1 (" in listing


def test_in_a_browser_upload_training_run_it_and_see_its_outputs(stack: AirflowStack) -> None:
    """Chromium through Airflow's own UI: the "Upload pipeline" page takes training.yaml,
    and the run's "KFP outputs" tab shows the metrics table, the confusion matrix and the
    Markdown report. Screenshots: test-output/kfx-upload.png, kfx-run-outputs.png,
    kfx-run-report.png."""
    from playwright.sync_api import sync_playwright

    admin = Client(stack, "admin")
    base = admin.base
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        # Logged in as admin: the cookie Airflow's login page sets.
        token = admin.session.headers["Authorization"].removeprefix("Bearer ")
        context.add_cookies([{"name": "_token", "value": token, "url": base}])
        page = context.new_page()
        page.goto(f"{base}/plugin/kfx-upload", wait_until="load")
        upload = page.frame_locator("iframe").first
        upload.locator("input[type=file]").set_input_files(str(TRAINING))
        upload.get_by_role("button", name="Upload").click()
        upload.get_by_text("is pipeline 'training'").wait_for(timeout=120_000)
        page.screenshot(path=str(OUTPUT / "kfx-upload.png"))

        stack.wait_for_dag("training", timeout=120)
        run = admin.post("/api/v2/dags/training/dagRuns", json={"logical_date": None, "conf": {}})
        assert run.status_code == 200, run.text
        run_id = run.json()["dag_run_id"]
        assert stack.wait_for_run("training", run_id, timeout=600) == "success", stack.logs()

        outputs = Client(stack, "alice").get(f"/kfx/api/runs/training/{run_id}").json()
        (report,) = [a for t in outputs["tasks"] for a in t["artifacts"] if a["schema_title"] == "system.Markdown"]
        served = Client(stack, "alice").get(f"/kfx/runs/training/{run_id}/artifact", params={"uri": report["uri"]})
        assert served.status_code == 200 and served.text.startswith("#"), served.text[:200]
        assert served.headers["Content-Security-Policy"].startswith("sandbox")  # never runs as Airflow's origin
        page.goto(f"{base}/dags/training/runs/{run_id}", wait_until="load")
        page.get_by_text("KFP outputs", exact=True).first.click()
        view = page.frame_locator("iframe").first
        metrics = view.locator("table.kfx-metrics").first
        metrics.wait_for(timeout=60_000)
        assert "accuracy" in metrics.inner_text()
        assert view.locator("svg.kfx-confusion").count() == 1
        assert view.locator(".kfx-markdown table").count() >= 1  # the report's tables, rendered
        evaluate = view.locator("section[data-task='evaluate-model']")
        evaluate.locator("h3", has_text="metrics").scroll_into_view_if_needed()
        page.screenshot(path=str(OUTPUT / "kfx-run-outputs.png"))  # the metrics table and the confusion matrix
        evaluate.locator(".kfx-markdown").scroll_into_view_if_needed()
        page.screenshot(path=str(OUTPUT / "kfx-run-report.png"))  # the Markdown report
        browser.close()
