"""``docker-compose.yaml`` without a Docker engine: valid under the Compose Specification
(the compose-spec bindings of the Rust ``compose_spec`` crate), every service it depends on
exists, every Airflow service runs an Airflow command this Airflow has, and every
``AIRFLOW__*`` setting is an option Airflow (or ``[kfx]``) knows — a misspelt one would be
silently ignored by Airflow."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.support import REPO

COMPOSE = REPO / "docker-compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # PyYAML expands the `<<: *airflow` merge keys, as Docker Compose does.
    return yaml.safe_load(COMPOSE.read_text())


def _validate(document: dict[str, Any]) -> None:
    import compose_spec

    compose_spec.PyCompose.from_json(json.dumps(document)).validate()


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    _validate(compose)
    broken = json.loads(json.dumps(compose))
    broken["services"]["postgres"]["healthcheck"]["test"] = 5
    with pytest.raises(ValueError, match="CMD"):  # the check can fail
        _validate(broken)


def test_services_depend_on_services_that_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or []
        assert set(depends) <= set(services), f"{name} depends on {set(depends) - set(services)}"


def test_the_airflow_services_are_the_deployed_components(compose: dict[str, Any]) -> None:
    from airflow.cli.cli_config import core_commands

    commands = {command.name for command in core_commands}
    airflow = {name: s["command"] for name, s in compose["services"].items() if s.get("image", "").startswith("apache/airflow")}
    running = {command for command in airflow.values() if command in commands}
    assert running == {"api-server", "scheduler", "dag-processor", "triggerer"}, airflow


def test_every_airflow_setting_is_an_option_airflow_knows(compose: dict[str, Any]) -> None:
    from airflow.configuration import conf

    from airflow_kfx.config import OPTIONS

    environment = compose["x-airflow"]["environment"]
    settings = [key for key in environment if key.startswith("AIRFLOW__")]
    assert settings
    for key in settings:
        section, option = key.removeprefix("AIRFLOW__").lower().split("__", 1)
        # Airflow's own option list (has_option is False for an option without a default)
        declared = conf.configuration_description.get(section, {}).get("options", {})
        known = option in OPTIONS if section == "kfx" else option in declared or conf.has_option(section, option)
        assert known, f"{key} is not an Airflow option: Airflow would ignore it"
    assert environment["AIRFLOW__KFX__PIPELINE_ROOT"].startswith("s3://")  # artifacts in MinIO
    assert "endpoint_url=http%3A%2F%2Fminio%3A9000" in environment["AIRFLOW_CONN_AWS_DEFAULT"]
