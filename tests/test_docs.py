"""The documentation's examples run: every ``python`` block of docs/python-client.md (in order, in
one namespace, top-level ``await`` allowed) and every ``bash`` block of docs/http-api.md, each in
its own process, as a reader would paste them, against the real stack."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from config.settings import StudioSettings
from studio.api import Studio
from studio.stack import settings_env
from tests.conftest import ApiServer
from tests.test_catalogue_operations import png_bytes

DOCS = Path(__file__).resolve().parent.parent / "docs"
# The runner ends with os._exit once every block has run, as the studio CLI does: the Temporal
# SDK's runtime threads can abort the interpreter during finalisation (sdk-python#300; seen once in
# ten CI runs here, after "all blocks ran"). A block that fails still exits non-zero before that.
RUNNER = """
import ast, asyncio, inspect, os, sys
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
namespace = {"__name__": "__doc__"}
for number, block in enumerate(sys.stdin.read().split("\\n#--block--\\n"), 1):
    code = compile(block, f"<block {number}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    value = eval(code, namespace)
    if inspect.iscoroutine(value):
        loop.run_until_complete(value)
print("all blocks ran")
sys.stdout.flush()
os._exit(0)
"""


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of ``language`` in ``path``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


async def run(args: list[str], env: dict[str, str], stdin: str, cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, **env},
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=300)
    return process.returncode or 0, out.decode()


async def test_the_python_client_page_runs(
    studio: Studio, settings: StudioSettings, user_id: str, tmp_path: Path
) -> None:
    code = blocks(DOCS / "python-client.md", "python")
    assert len(code) >= 6
    script = "\n#--block--\n".join(code).replace('"u42"', repr(user_id))
    script = script.replace('"order-1234"', repr(f"order-{user_id}"))
    script = script.replace('"sheet-7"', repr(f"sheet-{user_id}"))
    status, output = await run(
        [sys.executable, "-c", RUNNER], settings_env(settings), script, tmp_path
    )
    assert status == 0 and output.rstrip().endswith("all blocks ran"), output
    assert "done" in output and "succeeded" in output and "['inputs.size']" in output


async def test_the_http_api_quick_tour_runs(
    api_server: ApiServer, user_id: str, tmp_path: Path
) -> None:
    (tmp_path / "photo.png").write_bytes(png_bytes(colour=(20, 120, 220)))
    code = blocks(DOCS / "http-api.md", "bash")
    assert len(code) >= 2
    script = "\n".join(code).replace("u42", user_id).replace("order-1234", f"order-{user_id}")
    env = {"API": api_server.url, "STUDIO_API_TOKEN": api_server.token}
    status, output = await run(["bash", "-euo", "pipefail", "-c", script], env, "", tmp_path)
    assert status == 0, output
    assert '"status": "completed"' in output and "event: result" in output, output
