"""Benchmark: end-to-end latency, throughput and history size of the durable operation.

Runs N text-to-image operations against the emulator with zero provider latency, on a local
Temporal dev server with one worker process, and prints a table; writes JSON to bench/results/.

    .venv/bin/python bench/bench_operations.py --operations 200 --concurrency 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.api import Studio  # noqa: E402
from studio.ledger.db import shared_engine  # noqa: E402
from studio.ledger.service import Ledger  # noqa: E402
from studio.settings import StudioSettings  # noqa: E402
from studio.stack import (  # noqa: E402
    dev_server,
    emulator_process,
    free_port,
    settings_env,
    wait_for_port,
    worker_process,
)
from studio.temporal import connect  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    temporal_port, emulator_port = free_port(), free_port()
    server = dev_server(
        port=temporal_port, ui_port=None, db_file=None, log_path=work / "temporal.log"
    )
    emulator = emulator_process(
        port=emulator_port, log_path=work / "emulator.log", extra_args=["--processing-seconds", "0"]
    )
    settings = StudioSettings(
        data_dir=work,
        temporal_address=f"127.0.0.1:{temporal_port}",
        task_queue="bench",
        wavespeed_base_url=f"http://127.0.0.1:{emulator_port}",
    )
    worker = worker_process(env=settings_env(settings), log_path=work / "worker.log")
    server.start()
    emulator.start()
    try:
        wait_for_port(
            "127.0.0.1", temporal_port, timeout=60, process=server.process, name="dev server"
        )
        wait_for_port(
            "127.0.0.1", emulator_port, timeout=30, process=emulator.process, name="emulator"
        )
        worker.start()
        client = await connect(settings)
        studio = Studio(client, settings)
        ledger = Ledger(shared_engine(settings.ledger_url, True))
        ledger.sync_plans()
        for user in range(50):  # benchmark users must not hit plan limits
            ledger.assign_plan(f"bench-user-{user}", "enterprise")
        options = {"size": "256*256"}

        async def one(i: int) -> float:
            started = time.perf_counter()
            await studio.generate_image(f"bench {i}", options, f"bench-user-{i % 50}")
            return time.perf_counter() - started

        for i in range(3):  # warm-up: worker start, sandbox, connections
            await one(-1 - i)

        sequential = [await one(i) for i in range(args.sequential)]

        semaphore = asyncio.Semaphore(args.concurrency)

        async def bounded(i: int) -> float:
            async with semaphore:
                return await one(1000 + i)

        started = time.perf_counter()
        loaded = await asyncio.gather(*(bounded(i) for i in range(args.operations)))
        wall = time.perf_counter() - started

        histories = []
        async for execution in client.list_workflows("WorkflowType = 'ImageOperation'", limit=20):
            history = await client.get_workflow_handle(execution.id).fetch_history()
            histories.append((len(json.dumps(history.to_json_dict())), len(history.events)))
    finally:
        worker.stop()
        emulator.stop()
        server.stop()

    return {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "provider_latency_seconds": 0,
        "sequential": {
            "runs": len(sequential),
            "p50_ms": round(statistics.median(sequential) * 1000, 1),
            "p95_ms": round(percentile(sequential, 0.95) * 1000, 1),
        },
        "concurrent": {
            "operations": args.operations,
            "concurrency": args.concurrency,
            "wall_seconds": round(wall, 2),
            "ops_per_second": round(args.operations / wall, 1),
            "p50_ms": round(statistics.median(loaded) * 1000, 1),
            "p95_ms": round(percentile(loaded, 0.95) * 1000, 1),
        },
        "history": {
            "sampled": len(histories),
            "mean_bytes": round(statistics.mean(b for b, _ in histories)),
            "max_bytes": max(b for b, _ in histories),
            "mean_events": round(statistics.mean(e for _, e in histories), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--operations", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=30)
    args = parser.parse_args()
    report = asyncio.run(run(args))

    table = Table(title="durable text-to-image, emulator at 0 s latency, 1 worker")
    table.add_column("measure")
    table.add_column("value", justify="right")
    seq, conc, hist = report["sequential"], report["concurrent"], report["history"]
    table.add_row("sequential e2e p50 / p95", f"{seq['p50_ms']} / {seq['p95_ms']} ms")
    table.add_row(
        f"{conc['operations']} ops at concurrency {conc['concurrency']}",
        f"{conc['wall_seconds']} s",
    )
    table.add_row("throughput", f"{conc['ops_per_second']} ops/s")
    table.add_row("loaded e2e p50 / p95", f"{conc['p50_ms']} / {conc['p95_ms']} ms")
    table.add_row(
        "history per operation (mean / max)", f"{hist['mean_bytes']} / {hist['max_bytes']} bytes"
    )
    table.add_row("history events per operation", f"{hist['mean_events']}")
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "operations.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
