# One-command set-up on a fresh machine: `make demo` runs the main job, `make test` the tests.
# Everything installs into .venv (runtime) and .venv-kfp (the KFP SDK, for compiling
# fixtures and cross-checks only: it pins an older kubernetes/protobuf than Airflow).

PYTHON ?= python3
VENV := .venv
KFP_VENV := .venv-kfp
UV := $(VENV)/bin/uv

.PHONY: setup system-deps lint test test-fast demo airflow conformance compile-fixtures compile-v1-fixtures bench clean

setup: $(VENV)/.installed $(KFP_VENV)/.installed

# Debian's Chromium, driven by Playwright for the MLflow UI screenshot test.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

$(VENV)/.installed: requirements/constraints.txt pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --compile-bytecode --python $(VENV)/bin/python -r requirements/constraints.txt
	$(UV) pip install --quiet --python $(VENV)/bin/python --no-deps -e .
	touch $@

$(KFP_VENV)/.installed: requirements/kfp-tools.txt $(VENV)/.installed
	$(UV) venv --quiet --clear --python $(VENV)/bin/python $(KFP_VENV)
	$(UV) pip install --quiet --python $(KFP_VENV)/bin/python -r requirements/kfp-tools.txt
	touch $@

# ruff: pyflakes, bugbear, imports (incl. no heavy imports at module level), pyupgrade.
lint: setup
	$(VENV)/bin/ruff check airflow_kfx dags tests bench tools

# The README's test command (CI runs it): the linter, then every test, slow end-to-end runs included.
test: setup system-deps lint
	$(VENV)/bin/python -m pytest -n 2 --dist worksteal

# Everything but the end-to-end pipeline runs.
test-fast: setup
	$(VENV)/bin/python -m pytest -m "not slow"

# The main job on the embedded default: the training example run once through
# Airflow (SQLite metadata DB in .kfx/, MLflow at sqlite:///mlflow.db), plus the Pod
# manifests its tasks would submit to a cluster.
demo: setup
	$(VENV)/bin/kfx validate dags/
	$(VENV)/bin/kfx run dags/pipelines/training.yaml --json build/training-summary.json
	$(VENV)/bin/kfx render dags/pipelines/training.yaml -o build/pods

# Airflow's UI with the repo's DAGs (local runtime) and MLflow's, until Ctrl-C:
# Airflow at http://127.0.0.1:8080 (every visitor is admin: a development set-up),
# MLflow at http://127.0.0.1:5000. State under .kfx/standalone and mlflow.db.
AIRFLOW_PORT ?= 8080
MLFLOW_PORT ?= 5000
airflow: setup
	@mkdir -p .kfx/standalone
	trap 'kill 0' EXIT INT TERM; \
	$(VENV)/bin/mlflow server --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT) \
	  > .kfx/standalone/mlflow.log 2>&1 & \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	AIRFLOW_HOME="$(CURDIR)/.kfx/standalone" \
	AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/dags" \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True \
	AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__API__BASE_URL=http://127.0.0.1:$(AIRFLOW_PORT) \
	AIRFLOW__KFX__RUNTIME=local \
	AIRFLOW__KFX__PIPELINE_ROOT="$(CURDIR)/.kfx/standalone/artifacts" \
	AIRFLOW__KFX__MLFLOW_UI_URL=http://127.0.0.1:$(MLFLOW_PORT) \
	MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT) \
	$(VENV)/bin/airflow standalone

# The whole KFP backend conformance table (~30 min; CI runs a subset within `make test`).
conformance: setup
	$(VENV)/bin/python -m pytest tests/test_conformance.py -m conformance

compile-fixtures: $(KFP_VENV)/.installed
	$(KFP_VENV)/bin/python tools/compile_fixtures.py

# The KFP v1 fixtures (tests/fixtures/v1: workflow .yaml and .tar.gz package), compiled
# with the real KFP v1 SDK in its own venv (kfp 1.8 pins protobuf 3, kubernetes<26).
KFP1_VENV := .venv-kfp1
$(KFP1_VENV)/.installed: requirements/kfp1-tools.txt $(VENV)/.installed
	$(UV) venv --quiet --clear --python $(VENV)/bin/python $(KFP1_VENV)
	$(UV) pip install --quiet --python $(KFP1_VENV)/bin/python -r requirements/kfp1-tools.txt
	touch $@

compile-v1-fixtures: $(KFP1_VENV)/.installed
	$(KFP1_VENV)/bin/python tools/compile_v1_fixtures.py

bench: setup
	$(VENV)/bin/python bench/load_corpus.py

clean:
	rm -rf $(VENV) $(KFP_VENV) build
