"""Scale-out proof: three worker processes and an API process that share no disk, only
PostgreSQL, an S3-protocol server (moto) and the Temporal server.

A mixed workload (operations with variations, a three-step pipeline, webhooks on) runs through
the HTTP API while one worker is killed with SIGKILL in the middle of its work. Every run must
finish; every result must download through a signed URL the API hands out, without
credentials; one prediction per variation; the ledger audit clean; no server path in any
result or history; the metrics endpoints of the workers and the API show the work; the JSON
logs carry each event's run, operation, user and trace id (and never the API key).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from config.settings import StudioSettings
from emulator.server import EmulatorServer
from ledger.audit import verify
from ledger.db import ensure_schema
from ledger.service import Ledger
from studio.stack import ChildProcess, free_port, settings_env, wait_for_port, worker_process
from tests.conftest import API_KEY, S3Server

pytestmark = [pytest.mark.scaleout, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / "examples" / "generate-upscale-3d.yaml").read_text()
OPERATIONS = 6


@dataclass
class Cluster:
    workers: list[ChildProcess]
    metrics: list[str]
    api: ChildProcess
    api_url: str
    token: str

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Studio-User": user}


def child_env(settings: StudioSettings, data_dir: Path, **extra: str) -> dict[str, str]:
    """One process's environment: its own data directory, everything shared named explicitly."""
    assert settings.blob_backend == "s3"
    return {
        **settings_env(settings),  # the bucket, endpoint and key of the shared S3 server
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_BLOB_DIR": str(data_dir / "blobs"),  # never used: blobs are in S3
        "WAVESPEED_API_KEY": API_KEY,
        "STUDIO_AUTO_MIGRATE": "false",
        "STUDIO_MAINTENANCE_EVERY_MINUTES": "0",
        "STUDIO_WORKER_STICKY_TIMEOUT_SECONDS": "1",
        "STUDIO_WEBHOOK_FALLBACK_SECONDS": "4",
        "STUDIO_LOG_FORMAT": "json",
        **extra,
    }


@pytest.fixture
def cluster(
    settings: StudioSettings,
    postgres_url: str,
    s3_server: S3Server,
    emulator: EmulatorServer,
    tmp_path: Path,
) -> Iterator[Cluster]:
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    token = f"api-{uuid.uuid4().hex}"
    shared = s3_server.settings(
        settings.model_copy(
            update={
                "task_queue": f"scale-{uuid.uuid4().hex[:6]}",
                "database_url": postgres_url,
                "webhook_public_url": api_url,
                "activity_start_to_close_seconds": 5.0,
            }
        )
    )
    # The deploy's migrate job creates the schema; the plans are loaded by the workers themselves,
    # three at once on an empty table (they must not trip over each other).
    ensure_schema(create_engine(postgres_url), auto_migrate=True)
    secret = emulator.config.webhook_secret
    workers, metrics = [], []
    for index in range(3):
        port = free_port()
        env = child_env(
            shared,
            tmp_path / f"worker-{index}",
            STUDIO_METRICS_BIND=f"127.0.0.1:{port}",
            STUDIO_WEBHOOK_SECRET=secret,
        )
        workers.append(worker_process(env=env, log_path=tmp_path / f"worker-{index}.log"))
        metrics.append(f"http://127.0.0.1:{port}")
    api_env = child_env(
        shared,
        tmp_path / "api",
        STUDIO_API_TOKEN=token,
        STUDIO_WEBHOOK_SECRET=secret,
        STUDIO_URL_SIGNING_KEY=uuid.uuid4().hex,
    )
    api = ChildProcess(
        "api",
        [sys.executable, "-m", "studio.cli", "api", "--port", str(api_port)],
        tmp_path / "api.log",
        env=api_env,
        cwd=ROOT,
    )
    processes = [*workers, api]
    for process in processes:
        process.start()
    try:
        wait_for_port("127.0.0.1", api_port, timeout=60, process=api.process, name="API")
        for worker in workers:
            _wait_ready(worker)
        yield Cluster(workers, metrics, api, api_url, token)
    finally:
        for process in processes:
            process.kill()


def _wait_ready(worker: ChildProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "worker on" not in worker.tail(200):
        assert worker.running and time.monotonic() < deadline, worker.tail()
        time.sleep(0.1)


async def test_three_workers_an_api_and_a_sigkill_share_only_postgres_s3_and_temporal(
    cluster: Cluster,
    emulator: EmulatorServer,
    client: Client,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    user = f"scale-{uuid.uuid4().hex[:8]}"
    Ledger(create_engine(postgres_url)).assign_plan(user, "enterprise")
    tag = uuid.uuid4().hex[:6]
    variations = {f"scale {tag} #{i}": 2 + i % 2 for i in range(OPERATIONS)}
    emulator.configure(processing_seconds=2.0)
    try:
        async with httpx.AsyncClient(base_url=cluster.api_url, timeout=30) as http:
            runs = await _start_workload(http, cluster, user, variations)
            killed_holding = await _kill_a_busy_worker(cluster, runs, http, user)
            finished = await _wait_all(http, cluster, user, runs)
    finally:
        emulator.configure(processing_seconds=0.2)
    elapsed = time.monotonic() - began

    assert all(body["status"] == "completed" for body in finished.values()), {
        k: (v["status"], v.get("error")) for k, v in finished.items()
    }
    urls = await _every_download_url_serves_its_bytes(finished)
    _one_prediction_per_variation(emulator, variations)
    assert verify(create_engine(postgres_url)) == [], "ledger audit"
    await _no_server_path_in_any_history(client, list(finished))
    _the_survivors_finished_the_killed_workers_runs(cluster, killed_holding)
    await _metrics_moved(cluster)
    _logs_are_json_with_ids(cluster, user)
    print(
        f"\nscale-out: {len(finished)} runs, {len(urls)} files, worker 0 killed holding "
        f"{sorted(killed_holding)}; {elapsed:.1f} s"
    )


async def _start_workload(
    http: httpx.AsyncClient, cluster: Cluster, user: str, variations: dict[str, int]
) -> dict[str, str]:
    """Run id -> kind ("operations" or "pipelines")."""
    runs: dict[str, str] = {}
    for prompt, count in variations.items():
        response = await http.post(
            "/v1/operations",
            json={
                "operation": "text_to_image",
                "prompt": prompt,
                "options": {"size": "512*512", "num_variations": count},
            },
            headers=cluster.headers(user),
        )
        assert response.status_code == 202, response.text
        runs[response.json()["id"]] = "operations"
    import yaml

    definition = yaml.safe_load(EXAMPLE)
    definition["name"] = f"scale-{uuid.uuid4().hex[:6]}"
    response = await http.post(
        "/v1/pipelines", json={"definition": definition}, headers=cluster.headers(user)
    )
    assert response.status_code == 202, response.text
    runs[response.json()["id"]] = "pipelines"
    return runs


async def _kill_a_busy_worker(
    cluster: Cluster, runs: dict[str, str], http: httpx.AsyncClient, user: str
) -> set[str]:
    """SIGKILL worker 0 as soon as it has submitted paid work; the operations it was holding."""
    victim = cluster.workers[0]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        holding = {
            e["operation_id"]
            for e in _events(victim)
            if e.get("activity") == "submit_prediction" and "operation_id" in e
        }
        if holding:
            victim.kill()
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("worker 0 never got paid work within 30 s")
    statuses = [
        (await http.get(f"/v1/{kind}/{run}", headers=cluster.headers(user))).json()["status"]
        for run, kind in runs.items()
    ]
    assert "running" in statuses, "the kill happened mid-run"
    return holding


async def _wait_all(
    http: httpx.AsyncClient, cluster: Cluster, user: str, runs: dict[str, str]
) -> dict[str, dict[str, Any]]:
    finished: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 90
    while len(finished) < len(runs) and time.monotonic() < deadline:
        for run, kind in runs.items():
            if run not in finished:
                body = (await http.get(f"/v1/{kind}/{run}", headers=cluster.headers(user))).json()
                if body["status"] != "running":
                    finished[run] = body
        await asyncio.sleep(0.5)
    assert len(finished) == len(runs), f"still running: {set(runs) - set(finished)}"
    return finished


async def _every_download_url_serves_its_bytes(finished: dict[str, dict[str, Any]]) -> list[str]:
    expected: list[tuple[str, str]] = []
    for body in finished.values():
        if "download_links" in body:  # an operation
            shas = [link.rsplit("/", 1)[-1] for link in body["download_links"]]
            expected += list(zip(body["download_urls"], shas, strict=True))
        else:  # a pipeline: per step
            for step in body["result"]["steps"]:
                shas = [o["blob"]["sha256"] for o in step["outputs"] if o.get("blob")]
                expected += list(zip(body["download_urls"][step["name"]], shas, strict=True))
    assert len(expected) >= 2 * OPERATIONS + 3
    async with httpx.AsyncClient(timeout=30) as anonymous:  # no token, no user, no cookies
        responses = await asyncio.gather(*(anonymous.get(url) for url, _ in expected))
    for (url, sha), response in zip(expected, responses, strict=True):
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=" in url, url
        assert response.status_code == 200, (url, response.status_code)
        assert hashlib.sha256(response.content).hexdigest() == sha
    return [url for url, _ in expected]


def _one_prediction_per_variation(emulator: EmulatorServer, variations: dict[str, int]) -> None:
    made: dict[str, int] = {}
    for p in emulator.predictions():
        prompt = str((p["input"] or {}).get("prompt", ""))
        if prompt in variations:
            made[prompt] = made.get(prompt, 0) + 1
    assert made == variations, "one paid prediction per variation, kill or not"


async def _no_server_path_in_any_history(client: Client, run_ids: list[str]) -> None:
    blob_refs = 0
    for run in run_ids:
        history = await client.get_workflow_handle(run).fetch_history()
        for event in history.events:
            for data in _payloads(event):
                assert b"file://" not in data, f"a server path in the history of {run}"
                blob_refs += data.count(b'"location":"blob:')
    assert blob_refs > 0, "the scan saw the blob references"


def _payloads(message: Any) -> Iterator[bytes]:
    """Every payload's bytes anywhere inside a protobuf message."""
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif hasattr(value, "ListFields"):
            items = [value]
        else:  # a repeated field
            items = list(value)
        for item in items:
            if isinstance(item, Payload):
                yield item.data
            elif hasattr(item, "ListFields"):
                yield from _payloads(item)


def _the_survivors_finished_the_killed_workers_runs(cluster: Cluster, holding: set[str]) -> None:
    settled_by_survivors = {
        e.get("operation_id")
        for worker in cluster.workers[1:]
        for e in _events(worker)
        if e.get("activity") == "settle_operation"
    }
    assert holding <= settled_by_survivors, (holding, settled_by_survivors)


async def _healthz_settled(
    http: httpx.AsyncClient, url: str, within: float = 30.0
) -> httpx.Response:
    """A worker's last health answer once it settles: the check refreshes every 2 s while
    unhealthy, so a poller briefly between long polls may read 503 once; a dead one stays 503."""
    deadline = time.monotonic() + within
    while True:
        answer = await http.get(f"{url}/healthz")
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(1.0)


async def _metrics_moved(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        survivors = [await http.get(f"{url}/metrics") for url in cluster.metrics[1:]]
        health = [await _healthz_settled(http, url) for url in cluster.metrics[1:]]
        api = await http.get(f"{cluster.api_url}/metrics")
        api_health = await http.get(f"{cluster.api_url}/healthz")
    assert all(r.status_code == 200 for r in [*survivors, api])
    texts = [r.text for r in survivors]
    assert _total(texts, "studio_operations_finished_total", status="succeeded") >= 1
    assert _total(texts, "studio_operations_started_total") >= 1
    assert _total(texts, "studio_charged_usd_total") > 0
    assert _total(texts, "studio_prediction_completions_total", via="webhook") >= 1
    assert _total(texts, "studio_provider_request_duration_seconds_count", call="submit") >= 1
    assert _total(texts, "studio_operation_duration_seconds_count") >= 1
    for sdk_metric in (  # the SDK's runtime metrics that docs/operations.md and alerts.yml use
        "temporal_workflow_completed",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_worker_task_slots_available",
        "temporal_num_pollers",
    ):
        assert all(sdk_metric in t for t in texts), sdk_metric
    assert _total([api.text], "studio_webhooks_received_total", outcome="hinted") >= 1
    assert _total([api.text], "studio_http_requests_total") >= 1
    assert "temporal_request" in api.text, "the API's client metrics from the SDK"
    for text in [*texts, api.text]:
        assert API_KEY not in text
    assert [h.status_code for h in health] == [200, 200], [h.text for h in health]
    assert all(h.json()["status"] == "pollers alive" for h in health)
    assert api_health.status_code == 200 and api_health.json() == {
        "status": "ok",
        "temporal": "ok",
        "database": "ok",
        "blobs": "ok",
    }


def _total(texts: list[str], name: str, **labels: str) -> float:
    """Sum of a metric's samples (with these labels) over several expositions."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", re.MULTILINE)
    for text in texts:
        for match in pattern.finditer(text):
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
    return total


def _events(process: ChildProcess) -> list[dict[str, Any]]:
    events = []
    if not process.log_path.exists():
        return events
    for line in process.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def _logs_are_json_with_ids(cluster: Cluster, user: str) -> None:
    settled = [
        e
        for w in cluster.workers[1:]
        for e in _events(w)
        if e.get("activity") == "settle_operation" and e.get("user") == user
    ]
    assert settled, "settlements were logged"
    for event in settled:
        assert {"ts", "level", "message", "workflow_id", "run_id", "operation_id"} <= set(event)
        assert re.fullmatch(r"[0-9a-f]{32}", event.get("trace_id", "")), event
    for process in [*cluster.workers, cluster.api]:
        log = process.log_path.read_text(errors="replace")
        assert API_KEY not in log and cluster.token not in log, f"a secret in {process.name} logs"
        lines = [line for line in log.splitlines() if line.strip()]
        json_lines = [line for line in lines if line.startswith("{")]
        assert len(json_lines) >= 0.9 * len(lines), f"{process.name} logs are not JSON lines"
