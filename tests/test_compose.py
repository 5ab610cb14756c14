"""The production stack's structure (no Docker engine runs on CI, so the file is checked as data)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from studio.search import ALL_KEYS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service]["environment"].items()}


def test_every_part_of_the_stack_is_there_with_the_right_images() -> None:
    assert set(SERVICES) == {
        "postgresql",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "migrate",
        "worker",
        "api",
    }
    assert SERVICES["postgresql"]["image"].startswith("postgres:")
    assert SERVICES["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert SERVICES["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert SERVICES["temporal-setup"]["image"].startswith("temporalio/admin-tools:")
    for name in ("worker", "api", "migrate"):
        assert (
            SERVICES[name]["build"] == "."
            and SERVICES[name]["image"] == "image-studio-engine:latest"
        )


def test_ports_dependencies_and_health_checks() -> None:
    assert "7233:7233" in SERVICES["temporal"]["ports"]
    assert "8080:8080" in SERVICES["temporal-ui"]["ports"]
    assert "8000:8000" in SERVICES["api"]["ports"]
    assert "ports" not in SERVICES["worker"] and "container_name" not in SERVICES["worker"], (
        "scalable with --scale"
    )
    assert SERVICES["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert SERVICES["worker"]["depends_on"] == {
        "temporal": {"condition": "service_healthy"},
        "temporal-setup": {"condition": "service_completed_successfully"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert SERVICES["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgresql", "temporal", "temporal-ui", "worker", "api"):
        assert SERVICES[name].get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_configuration_points_at_the_stack_and_secrets_come_from_the_environment() -> None:
    worker = env("worker")
    assert worker["STUDIO_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert (
        worker["STUDIO_DATABASE_URL"].startswith("postgresql+psycopg://")
        and "@postgresql:5432/" in worker["STUDIO_DATABASE_URL"]
    )
    assert worker["STUDIO_AUTO_MIGRATE"] == "false", "the migrate job owns the schema"
    assert re.fullmatch(r"\$\{WAVESPEED_API_KEY:\?.+\}", worker["WAVESPEED_API_KEY"])
    assert re.fullmatch(r"\$\{STUDIO_API_TOKEN:\?.+\}", env("api")["STUDIO_API_TOKEN"])
    assert SERVICES["migrate"]["command"] == ["studio", "db", "upgrade"]
    assert SERVICES["worker"]["command"] == ["python", "worker.py"]


def test_search_attributes_registered_are_the_ones_the_code_uses() -> None:
    script = " ".join(SERVICES["temporal-setup"]["command"])
    registered = set(re.search(r"for name in ([A-Za-z ]+); do", script).group(1).split())
    assert registered == {key.name for key in ALL_KEYS}


def test_the_image_contains_the_whole_engine() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in (
        "workflows",
        "activities",
        "providers",
        "studio",
        "emulator",
        "worker.py",
        "pyproject.toml",
    ):
        assert re.search(rf"^COPY .*{re.escape(package)}", dockerfile, re.MULTILINE), package
    assert "USER studio" in dockerfile, "the container does not run as root"
