"""The ``studio`` command as a person meets it, in its own process: mistakes are one line on
stderr with the documented exit code, within 5 s, never a traceback; ``--json`` prints only JSON;
``status``/``cancel``/``list`` work for operations as well as pipelines."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from config.settings import StudioSettings
from studio.api import Studio
from studio.stack import free_port, settings_env

STUDIO = str(Path(sys.executable).parent / "studio")


async def cli(
    env: dict[str, str], *args: str, stdin: bytes = b"", cwd: Path | None = None
) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, seconds) of one ``studio`` command."""
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        STUDIO,
        *args,
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=90)
    return process.returncode or 0, out.decode(), err.decode(), time.monotonic() - began


def assert_one_line(code: int, out: str, err: str, expected_code: int, *phrases: str) -> None:
    assert code == expected_code, (code, out, err)
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


@pytest.fixture
def offline(tmp_path: Path) -> dict[str, str]:
    """An environment whose Temporal address has nothing listening."""
    return {
        "STUDIO_DATA_DIR": str(tmp_path / "data"),
        "STUDIO_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }


async def test_each_mistake_is_one_line_on_stderr_within_five_seconds(
    offline: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - name: a\n    operation: [text_to_image\n")
    cases = [
        (("quote", "missing.yaml"), 2, ["no such file: missing.yaml"]),
        (("run", "missing.yaml"), 2, ["no such file: missing.yaml"]),
        (("quote", str(bad)), 2, ["not valid YAML", "bad.yaml:5:1"]),
        (
            ("generate", "a cat", "--model", "no-such-model"),
            2,
            ["unknown model 'no-such-model'"],
        ),
        (("status", "nope"), 3, ["Temporal is not reachable", "studio up"]),
        (("cancel", "nope"), 3, ["Temporal is not reachable"]),
    ]
    # The promise is 5 s of the CLI's own work; starting the interpreter and importing the CLI is
    # the machine's (1.7 s unloaded here, 5 s once under heavy load), measured now with --version.
    *_, start_up = await cli(offline, "--version", cwd=tmp_path)
    for args, expected, phrases in cases:
        code, out, err, seconds = await cli(offline, *args, cwd=tmp_path)
        assert_one_line(code, out, err, expected, *phrases)
        assert seconds < start_up + 5, f"{args}: {seconds:.1f} s (start-up {start_up:.1f} s)"


async def test_help_documents_exit_codes_and_version_prints(offline: dict[str, str]) -> None:
    code, out, _, _ = await cli(offline, "--help")
    assert code == 0 and "Exit codes" in out and "3 Temporal" in out, out
    code, out, _, _ = await cli(offline, "status", "--help")
    assert code == 0 and "4 a plan limit" in " ".join(out.split()), out
    code, out, _, _ = await cli(offline, "--version")
    assert code == 0 and out.startswith("studio ") and out.split()[1][0].isdigit(), out


async def test_quote_json_is_parseable_and_the_examples_ship_with_the_package(
    offline: dict[str, str], tmp_path: Path
) -> None:
    from studio.cli_common import example_file

    example = example_file("generate-upscale-3d.yaml")
    assert example.is_file() and "studio" in example.parts, "examples are package data"
    code, out, err, _ = await cli(offline, "quote", str(example), "--json", cwd=tmp_path)
    assert code == 0, err
    quote = json.loads(out)
    assert [s["name"] for s in quote["steps"]] == ["generate", "upscale", "model"]
    assert quote["summary"].startswith("costs at most $")


async def test_an_unknown_model_names_its_step_only(
    offline: dict[str, str], tmp_path: Path
) -> None:
    definition = tmp_path / "p.yaml"
    definition.write_text(
        "name: p\nsteps:\n"
        "  - {name: gen, operation: text_to_image, model: no-such-model, prompt: a cat}\n"
        "  - {name: up, operation: upscale, inputs: {base: gen}}\n"
    )
    code, out, err, _ = await cli(offline, "quote", str(definition))
    assert_one_line(code, out, err, 2, "steps.gen.model")
    assert "steps.up" not in err, "no bogus 'required' for the step that uses it"


async def test_generate_json_then_status_list_and_cancel_of_an_operation(
    studio: Studio, settings: StudioSettings, user_id: str
) -> None:
    env = settings_env(settings)
    code, out, err, _ = await cli(env, "generate", "a quiet harbour", "--user", user_id, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["user_id"] == user_id and len(result["variations"]) == 1
    run = result["workflow_id"]

    code, out, err, _ = await cli(env, "status", run, "--json")
    assert code == 0, err
    assert json.loads(out)["phase"] == "succeeded"
    code, out, _, _ = await cli(env, "status", run)
    assert code == 0 and "succeeded" in out and run in out

    code, out, err, _ = await cli(env, "list", "--user", user_id, "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)["data"]] == [run]

    code, out, err, _ = await cli(env, "cancel", run)
    assert_one_line(code, out, err, 2, "has ended", "completed")
    code, out, err, _ = await cli(env, "status", "no-such-run")
    assert_one_line(code, out, err, 2, "no operation or pipeline 'no-such-run'")


async def test_run_asks_only_when_told_to_and_a_no_declines(
    studio: Studio, settings: StudioSettings, user_id: str
) -> None:
    from studio.cli_common import example_file

    env = settings_env(settings)
    example = str(example_file("prompt-to-3d.yaml"))
    code, out, err, _ = await cli(env, "run", example, "--user", user_id, "--ask", stdin=b"n\n")
    assert code == 1 and "Reserve this quote and run?" in err, (code, err)
    runs = [w async for w in studio.temporal.list_workflows(f"StudioUser = '{user_id}'")]
    assert runs == [], "declining starts nothing"
    # stdin is not a terminal here: no question, the run goes ahead
    code, out, err, _ = await cli(env, "run", example, "--user", user_id, "--json")
    assert code == 0, err
    assert "Reserve this quote" not in err
    assert json.loads(out)["user_id"] == user_id
