"""Shared fixtures: a real Temporal dev server, the WaveSpeed emulator over real HTTP, a SQLite
ledger in a temp dir, and a worker running this project's own workflows and activities.

Nothing is mocked: tests talk to the same code paths production uses, only the base URL differs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import uvicorn
from pydantic import SecretStr
from temporalio.client import Client

from activities.resources import StudioResources
from config.settings import StudioSettings
from emulator.config import EmulatorConfig
from emulator.server import EmulatorServer
from ledger.db import create_ledger_engine, ensure_schema
from ledger.service import Ledger
from studio.api import Studio
from studio.http.app import create_app
from studio.stack import ChildProcess, dev_server, free_port, wait_for_port
from studio.temporal import connect
from worker import build_worker

STATUS_FILE = os.environ.get("STUDIO_PYTEST_STATUS_FILE")
API_KEY = f"sk-test-{uuid.uuid4().hex}"
"""A distinctive key: tests assert it never shows up in history, search attributes or logs."""


def _xdist_worker(config: pytest.Config) -> bool:
    """True in a pytest-xdist worker process (the controller alone reports the run's status)."""
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Record the real outcome before the interpreter exits: the Temporal SDK can abort during
    # finalisation after every test passed (sdk-python#300); the test runner reads this file.
    if STATUS_FILE and not _xdist_worker(session.config):
        Path(STATUS_FILE).write_text(str(int(exitstatus)))


def pytest_unconfigure(config: pytest.Config) -> None:
    # Skip interpreter finalisation (where the SDK's Rust threads can abort) once pytest is done.
    if STATUS_FILE and Path(STATUS_FILE).exists() and not _xdist_worker(config):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(Path(STATUS_FILE).read_text() or 1))


POSTGRES_URL = os.environ.get(
    "STUDIO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
"""Under CI a missing prerequisite fails the run: a green CI must have tested everything."""


def require(available: bool, missing: str, install: str) -> None:
    """Skip (locally, reason printed by ``-rs``) or fail (under ``CI=true``) when ``missing``."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {missing}; install it: {install}", pytrace=False)
    pytest.skip(f"{missing} (install: {install})")


HYPOTHESIS_SEED: int | None = None
"""Under CI every hypothesis test runs from one seed, printed so a failure can be replayed."""


def pytest_configure(config: pytest.Config) -> None:
    global HYPOTHESIS_SEED
    if not IN_CI:
        return
    from hypothesis import core

    given = config.getoption("hypothesis_seed", None) or os.environ.get("STUDIO_HYPOTHESIS_SEED")
    HYPOTHESIS_SEED = int(given) if given else int.from_bytes(os.urandom(4), "big")
    core.global_force_seed = HYPOTHESIS_SEED
    os.environ["STUDIO_HYPOTHESIS_SEED"] = str(HYPOTHESIS_SEED)  # xdist workers inherit it


def _seed_line() -> str:
    return (
        f"hypothesis seed {HYPOTHESIS_SEED} (replay: pytest --hypothesis-seed={HYPOTHESIS_SEED})"
        if HYPOTHESIS_SEED is not None
        else "hypothesis: random seeds (CI=true fixes and prints one)"
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode = "CI=true: PostgreSQL and Chromium are required" if IN_CI else "local"
    return [f"studio test mode: {mode}", _seed_line()]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = len(terminalreporter.stats.get("skipped", []))
    terminalreporter.write_line(f"studio: {skipped} skipped (reasons above); {_seed_line()}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every test that reaches the PostgreSQL server carries the marker (``-m "not postgres"``).
    for item in items:
        if "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server CI provides: required under CI, a printed skip elsewhere."""
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    problem = None
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()
    require(
        problem is None,
        f"PostgreSQL is not reachable at {_shown(POSTGRES_URL)} ({problem})",
        "a PostgreSQL server (apt-get install postgresql, or the docker-compose service) and "
        "STUDIO_TEST_POSTGRES_URL pointing at it",
    )
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the server for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"studio_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each ledger test runs on the embedded default and on the production database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """A migrated ledger with the plans loaded, on SQLite and (marked postgres) PostgreSQL."""
    engine = create_ledger_engine(ledger_url)
    ensure_schema(engine, auto_migrate=True)
    book = Ledger(engine)
    book.sync_plans()
    yield book
    engine.dispose()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("studio")


@dataclass
class TemporalServer:
    address: str
    ui_url: str


@pytest.fixture(scope="session")
def temporal_server(data_dir: Path) -> Iterator[TemporalServer]:
    port, ui_port = free_port(), free_port()
    server: ChildProcess = dev_server(
        port=port, ui_port=ui_port, db_file=None, log_path=data_dir / "temporal.log"
    )
    server.start()
    try:
        wait_for_port(
            "127.0.0.1", port, timeout=60, process=server.process, name="Temporal dev server"
        )
        yield TemporalServer(f"127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def temporal_address(temporal_server: TemporalServer) -> str:
    return temporal_server.address


@dataclass
class S3Server:
    """moto's S3 server over real HTTP: the S3 protocol without a cloud account."""

    endpoint: str

    def settings(self, base: StudioSettings, bucket: str | None = None) -> StudioSettings:
        """``base`` with blobs in a fresh bucket on this server."""
        import boto3

        bucket = bucket or f"studio-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
        ).create_bucket(Bucket=bucket)
        return base.model_copy(
            update={
                "blob_backend": "s3",
                "s3_bucket": bucket,
                "s3_endpoint_url": self.endpoint,
                "s3_access_key_id": S3_KEY_ID,
                "s3_secret_access_key": SecretStr(S3_SECRET),
            }
        )


S3_KEY_ID, S3_SECRET = "studio-test", f"s3-secret-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def s3_server(data_dir: Path) -> Iterator[S3Server]:
    """A moto S3 server on a free port, started like the dev server and stopped after the run."""
    port = free_port()
    server = ChildProcess(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        data_dir / "moto.log",
    )
    server.start()
    try:
        wait_for_port("127.0.0.1", port, timeout=60, process=server.process, name="moto S3 server")
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(EmulatorConfig(processing_seconds=0.2, api_key=API_KEY))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _clean_emulator_faults(emulator: EmulatorServer) -> Iterator[None]:
    emulator.clear_faults()
    yield
    emulator.clear_faults()


@pytest.fixture(scope="session")
def settings(
    data_dir: Path, temporal_server: TemporalServer, emulator: EmulatorServer
) -> StudioSettings:
    return StudioSettings(
        data_dir=data_dir,
        temporal_address=temporal_server.address,
        temporal_ui_url=temporal_server.ui_url,
        task_queue="studio-tests",
        wavespeed_api_key=API_KEY,
        wavespeed_base_url=emulator.url,
        stability_api_key=API_KEY,
        stability_base_url=emulator.stability_url,
        stability_timeout_seconds=2.0,
        huggingface_api_key=API_KEY,
        huggingface_base_url=emulator.huggingface_url,
        huggingface_timeout_seconds=2.0,
        gemini_api_key=API_KEY,
        gemini_base_url=emulator.gemini_url,
        gemini_timeout_seconds=2.0,
        submit_timeout_seconds=3.0,
        request_timeout_seconds=5.0,
        activity_start_to_close_seconds=10.0,
        reconcile_grace_seconds=1.0,
    )


@pytest_asyncio.fixture(scope="session")
async def client(settings: StudioSettings) -> Client:
    return await connect(settings)


@pytest_asyncio.fixture(scope="session")
async def resources(settings: StudioSettings) -> AsyncIterator[StudioResources]:
    res = StudioResources.from_settings(settings)
    yield res
    await res.aclose()


@pytest_asyncio.fixture(scope="session")
async def worker(client: Client, resources: StudioResources) -> AsyncIterator[None]:
    async with build_worker(client, resources):
        yield
    await asyncio.sleep(0.5)  # mitigates sdk-python#300 on the way out


@pytest_asyncio.fixture(scope="session")
async def studio(client: Client, settings: StudioSettings, worker: None) -> Studio:
    return Studio(client, settings)


@dataclass
class ApiServer:
    url: str
    token: str
    settings: StudioSettings

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Studio-User": user}


@pytest_asyncio.fixture(scope="session")
async def api_server(
    client: Client, settings: StudioSettings, emulator: EmulatorServer
) -> AsyncIterator[ApiServer]:
    """The HTTP API over real HTTP, with webhooks on, plus a worker whose submissions carry them.

    Its runs use their own task queue, so the webhook settings don't touch the other tests.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = f"api-{uuid.uuid4().hex}"
    api_settings = settings.model_copy(
        update={
            "task_queue": "studio-api-tests",
            "webhook_public_url": url,
            "webhook_secret": SecretStr(emulator.config.webhook_secret),
            "webhook_fallback_seconds": 4.0,
            "api_token": SecretStr(token),
        }
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(api_settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    resources = StudioResources.from_settings(api_settings)
    try:
        wait_for_port("127.0.0.1", port, timeout=30, name="HTTP API")
        async with build_worker(client, resources):
            yield ApiServer(url, token, api_settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        await resources.aclose()


@pytest.fixture
def user_id() -> str:
    """A fresh user per test, so quotas never leak between tests."""
    return f"u-{uuid.uuid4().hex[:10]}"
