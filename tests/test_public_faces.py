"""Every package shows its public face, and nothing reaches behind another module's.

- Each package's ``__init__.py`` has a docstring and an ``__all__``, and every name in it resolves
  (the faces are lazy: importing a package does not import its heavy modules).
- No module imports a private (``_name``) name from another module: what two modules share gets
  a public name in the module that owns it.
- Public functions, methods and classes of the faces (``studio/``) and of the ground callers build
  on (``contracts/``, ``domain/``, ``blobs/``, ``providers/``) have docstrings.
- Importing the ``studio`` package or the emulator does not load Temporal.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = (
    "contracts",
    "config",
    "providers",
    "blobs",
    "ledger",
    "domain",
    "activities",
    "workflows",
    "studio",
    "emulator",
    "bench",
    "worker",
)
DOCUMENTED = ("studio", "contracts", "domain", "blobs", "providers")


def packages() -> list[str]:
    found = []
    for init in sorted(ROOT.rglob("__init__.py")):
        relative = init.parent.relative_to(ROOT)
        if (
            relative.parts
            and relative.parts[0] in FIRST_PARTY
            and "migrations" not in relative.parts
        ):
            found.append(".".join(relative.parts))
    return found


def modules_of(top: str) -> list[Path]:
    if top == "worker":
        return [ROOT / "worker.py"]
    return [p for p in sorted((ROOT / top).rglob("*.py")) if "migrations" not in p.parts]


def private_imports(source: str, where: str) -> list[str]:
    """``from x import _name`` of first-party modules in ``source`` (the module at ``where``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
            continue
        if node.module.split(".")[0] not in FIRST_PARTY:
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{where}:{node.lineno} {node.module}.{alias.name}")
    return found


def undocumented(path: Path) -> list[str]:
    """Public classes, functions and methods in ``path`` without a docstring."""
    missing = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_"):
                continue
            if ast.get_docstring(node) is None:
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {prefix}{node.name}")
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(path.read_text()).body, "")
    return missing


def test_the_walk_finds_the_packages() -> None:
    found = packages()
    assert {"contracts", "studio", "studio.http", "domain.pipelines", "ledger"} <= set(found)


@pytest.mark.parametrize("package", packages())
def test_every_package_has_a_documented_public_face(package: str) -> None:
    module = importlib.import_module(package)
    assert (module.__doc__ or "").strip(), f"{package}/__init__.py has no docstring"
    names = getattr(module, "__all__", None)
    assert isinstance(names, list), f"{package} has no __all__"
    assert len(names) == len(set(names)), f"{package}.__all__ names something twice"
    unresolved = [name for name in names if getattr(module, name, None) is None]
    assert unresolved == [], f"{package}.__all__ names what it does not have: {unresolved}"


def test_a_face_refuses_a_name_it_does_not_export() -> None:
    import studio

    with pytest.raises(AttributeError, match="no attribute 'Ledger'"):
        studio.__getattr__("Ledger")


@pytest.mark.parametrize("top", FIRST_PARTY)
def test_no_private_name_is_imported_across_modules(top: str) -> None:
    found = [
        hit
        for path in modules_of(top)
        for hit in private_imports(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == [], "\n".join(found)


def test_the_private_import_check_catches_one() -> None:
    source = "from activities.preflight import _validate\nfrom os import _exit\nfrom . import _x\n"
    assert private_imports(source, "studio/probe.py") == [
        "studio/probe.py:1 activities.preflight._validate"
    ]


@pytest.mark.parametrize("top", DOCUMENTED)
def test_public_functions_have_docstrings(top: str) -> None:
    found = [hit for path in modules_of(top) for hit in undocumented(path)]
    assert found == [], "\n".join(found)


def test_importing_the_faces_does_not_load_temporal() -> None:
    probe = (
        "import sys, studio, emulator.app, providers.catalogue, contracts.errors\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'temporalio')\n"
        "assert not loaded, loaded[:5]\n"
        "from studio import Studio, OperationOptions, InvalidRequestError\n"
        "assert 'temporalio' in sys.modules, 'Studio itself needs the SDK'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
