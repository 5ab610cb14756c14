"""The house keeps its floors: every import points down, and no module or function grows past a
size a person can read in one sitting.

Floors, bottom up (README "Architecture"):

    0 contracts, config     the ground: data crossing workflow boundaries, errors, settings
    1 providers             provider clients, the catalogue, the URL guard
    2 blobs                 the content-addressed blob store, media checks, ingestion
    3 ledger                the database: quota, holds, charges, records, reports
    4 domain                requests, options, prices, pipelines (pure logic over 1-3)
    5 activities            the I/O Temporal retries
    6 workflows             the durable decisions (deterministic)
    7 studio                the faces: Python API, HTTP API, CLI, embedded stack
    8 worker                what runs it all
    9 bench                 measures it all (its floor worker is built by worker.build_worker)

A module may import its own package and any package on a lower floor; anything else (up, or
sideways to another package on the same floor) is a violation. On top of that: workflows never
import providers (they see provider-neutral outcomes), the faces never import activities (what
both need lives lower), and the emulator stands on the ground and the catalogue only.

``test_the_checker_catches_an_upward_import`` shows the check failing on a deliberate one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS: dict[str, int] = {
    "contracts": 0,
    "config": 0,
    "providers": 1,
    "blobs": 2,
    "ledger": 3,
    "domain": 4,
    "activities": 5,
    "workflows": 6,
    "studio": 7,
    "worker": 8,
    "bench": 9,
}
FORBIDDEN: dict[str, set[str]] = {
    "workflows": {"providers"},
    "studio": {"activities"},
}
EMULATOR_MAY_IMPORT = {"contracts", "providers.catalogue", "emulator"}
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
SIZE_EXEMPT = ("ledger/migrations/", "emulator/render.py")


def first_party_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of one of our packages in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FLOORS or name.split(".")[0] == "emulator":
                found.append((node.lineno, name))
    return found


def violations(module: str, source: str) -> list[str]:
    """What is wrong with the imports of ``module`` (dotted name) given its ``source``."""
    package = module.split(".")[0]
    problems = []
    for line, target in first_party_imports(source):
        top = target.split(".")[0]
        where = f"{module}:{line} imports {target}"
        if package == "emulator":
            if not any(target == a or target.startswith(a + ".") for a in EMULATOR_MAY_IMPORT):
                problems.append(f"{where}: the emulator stands on contracts and the catalogue")
            continue
        if top == package:
            continue
        if top == "emulator":
            problems.append(f"{where}: production code never imports the emulator")
        elif top in FORBIDDEN.get(package, set()):
            problems.append(f"{where}: {package} must not import {top}")
        elif FLOORS[top] >= FLOORS[package]:
            direction = "up" if FLOORS[top] > FLOORS[package] else "sideways"
            problems.append(
                f"{where}: points {direction} (floor {FLOORS[package]} -> {FLOORS[top]})"
            )
    return problems


def production_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        top = relative.parts[0].removesuffix(".py")
        if top not in FLOORS and top != "emulator":
            continue
        if "migrations" in relative.parts:
            continue
        name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        modules.append((name, path))
    return modules


def test_every_import_points_down() -> None:
    modules = production_modules()
    assert len(modules) > 60, "the walk found the packages"
    problems = [p for name, path in modules for p in violations(name, path.read_text())]
    assert problems == [], "\n".join(problems)


def test_the_checker_catches_an_upward_import() -> None:
    assert violations("contracts.operation", "from studio.api import Studio") == [
        "contracts.operation:1 imports studio.api: points up (floor 0 -> 7)"
    ]
    assert violations("blobs.store", "import ledger.schema") == [
        "blobs.store:1 imports ledger.schema: points up (floor 2 -> 3)"
    ]
    assert violations("contracts.search", "from config.settings import StudioSettings") == [
        "contracts.search:1 imports config.settings: points sideways (floor 0 -> 0)"
    ]
    assert violations("workflows.operation", "from providers.wavespeed import errors") == [
        "workflows.operation:1 imports providers.wavespeed: workflows must not import providers"
    ]
    assert violations("studio.http.app", "from activities.store import OutputStorer") == [
        "studio.http.app:1 imports activities.store: studio must not import activities"
    ]
    assert violations("emulator.api", "from ledger.service import Ledger")
    assert violations("activities.submit", "from ledger.submissions import SubmissionBook") == []


@pytest.mark.parametrize("kind", ["files", "functions"])
def test_modules_and_functions_stay_readable(kind: str) -> None:
    too_long = []
    for _name, path in production_modules():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(SIZE_EXEMPT):
            continue
        source = path.read_text()
        if kind == "files":
            lines = len(source.splitlines())
            if lines > MAX_FILE_LINES:
                too_long.append(f"{relative}: {lines} lines")
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{relative}:{node.lineno} {node.name}: {length} lines")
    assert too_long == [], "\n".join(too_long)
