"""The engine against the alternatives, side by side in one run, on one machine.

Measures (emulator with configurable provider latency, one worker process, the dev server on the
same machine) and checks each against its target:

- orchestration overhead per operation vs. a one-activity workflow, our client without Temporal,
  and the official ``wavespeed`` SDK's blocking ``run()``;
- throughput and wall time for 1/10/100/500 concurrent operations at 0 s and 10 s latency, next
  to the seed system's synchronous design (one blocked thread per request, 40 threads);
- poll requests per operation for a 30 s job, with and without webhooks;
- history bytes per operation; worker memory per in-flight operation.

    .venv/bin/python bench/bench_engine.py            # full run (~5 min)
    .venv/bin/python bench/bench_engine.py --quick    # smaller counts (~1.5 min)

Prints a table, writes bench/results/engine.json and bench/results/engine.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import (  # noqa: E402
    direct_operation,
    sdk_operation,
    synchronous_operation,
)
from bench.one_activity import OneActivityWorkflow, bench_noop  # noqa: E402
from providers.wavespeed.client import WaveSpeedClient  # noqa: E402
from studio.api import Studio  # noqa: E402
from studio.ledger.db import shared_engine  # noqa: E402
from studio.ledger.service import Ledger  # noqa: E402
from studio.settings import EMULATOR_DEFAULT_KEY, StudioSettings  # noqa: E402
from studio.stack import (  # noqa: E402
    ChildProcess,
    dev_server,
    emulator_process,
    free_port,
    settings_env,
    wait_for_port,
    worker_process,
)
from studio.temporal import connect  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
USERS = [f"bench-user-{i}" for i in range(50)]
WEBHOOK_SECRET = "whsec_emulator-secret"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(pct(values, 0.95) * 1000, 1),
    }


class Stack:
    """Dev server, emulator, HTTP API (webhook receiver) and two workers: polling and webhooks."""

    def __init__(self, work: Path, sandbox: bool) -> None:
        self.work = work
        self.temporal_port, self.emulator_port, self.api_port = (
            free_port(),
            free_port(),
            free_port(),
        )
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        base = dict(
            data_dir=work,
            temporal_address=f"127.0.0.1:{self.temporal_port}",
            wavespeed_base_url=self.emulator_url,
            maintenance_every_minutes=0,
            worker_sandbox=sandbox,
        )
        self.polling = StudioSettings(task_queue="bench-poll", **base)
        self.webhooks = StudioSettings(
            task_queue="bench-hook",
            webhook_public_url=self.api_url,
            webhook_fallback_seconds=60,
            **base,
        )
        extra = {
            "STUDIO_WORKER_SANDBOX": str(sandbox).lower(),
            "STUDIO_MAINTENANCE_EVERY_MINUTES": "0",
        }
        hook_env = {
            **settings_env(self.webhooks),
            **extra,
            "STUDIO_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STUDIO_WEBHOOK_FALLBACK_SECONDS": "60",
        }
        self.children: list[ChildProcess] = [
            dev_server(
                port=self.temporal_port, ui_port=None, db_file=None, log_path=work / "temporal.log"
            ),
            emulator_process(
                port=self.emulator_port,
                log_path=work / "emulator.log",
                extra_args=["--processing-seconds", "0"],
            ),
        ]
        self.poll_worker = worker_process(
            env={**settings_env(self.polling), **extra}, log_path=work / "worker-poll.log"
        )
        self.hook_worker = worker_process(env=hook_env, log_path=work / "worker-hook.log")
        self.api = ChildProcess(
            "api",
            [sys.executable, "-m", "studio.cli", "api", "--port", str(self.api_port)],
            work / "api.log",
            env=hook_env,
            cwd=Path(__file__).resolve().parent.parent,
        )

    def start(self) -> None:
        for child in self.children:
            child.start()
        wait_for_port("127.0.0.1", self.temporal_port, timeout=60, name="dev server")
        wait_for_port("127.0.0.1", self.emulator_port, timeout=30, name="emulator")
        ledger = Ledger(shared_engine(self.polling.ledger_url, True))
        ledger.sync_plans()
        for user in USERS:
            ledger.assign_plan(user, "enterprise")
        for child in (self.poll_worker, self.hook_worker, self.api):
            child.start()
            self.children.append(child)
        wait_for_port("127.0.0.1", self.api_port, timeout=60, name="HTTP API")
        time.sleep(3)  # workers connect and poll

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def configure_emulator(self, **changes: Any) -> None:
        httpx.post(
            f"{self.emulator_url}/_emulator/config", json=changes, timeout=10
        ).raise_for_status()

    def predictions(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.emulator_url}/_emulator/predictions", timeout=60).json()


async def sample_peak(pid: int, peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], rss_mib(pid))
        await asyncio.sleep(0.2)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="studio-engine-bench-"))
    stack = Stack(work, sandbox=not args.unsandboxed)
    stack.start()
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "worker_sandbox": not args.unsandboxed,
    }
    try:
        client = await connect(stack.polling)
        polling, webhooks = Studio(client, stack.polling), Studio(client, stack.webhooks)
        from temporalio.worker import Worker

        async with Worker(
            client,
            task_queue="bench-baseline",
            workflows=[OneActivityWorkflow],
            activities=[bench_noop],
        ):
            report["overhead"] = await overhead(stack, client, polling, args.sequential)
        report["throughput"] = await throughput(
            stack, polling, webhooks, args.concurrency, args.sync_max
        )
        report["polls"] = await polls_per_operation(stack, polling, webhooks, args.poll_jobs)
        report["history"] = await history_sizes(client)
    finally:
        stack.stop()
    return report


async def overhead(stack: Stack, client: Any, studio: Studio, n: int) -> dict[str, Any]:
    async def timed(make: Any) -> list[float]:
        values = []
        for i in range(n + 3):
            started = time.perf_counter()
            await make(i)
            if i >= 3:  # warm-up excluded
                values.append(time.perf_counter() - started)
        return values

    async def one_activity(i: int) -> None:
        await client.execute_workflow(
            OneActivityWorkflow.run,
            str(i),
            id=f"noop-{uuid.uuid4().hex}",
            task_queue="bench-baseline",
        )

    provider = WaveSpeedClient(stack.emulator_url, EMULATOR_DEFAULT_KEY)
    loop = asyncio.get_running_loop()
    results = {
        "one_activity_workflow": ms(await timed(one_activity)),
        "direct_client_no_temporal": ms(
            await timed(lambda i: direct_operation(provider, f"direct {i}"))
        ),
        "official_sdk_run": ms(
            await timed(
                lambda i: loop.run_in_executor(
                    None, sdk_operation, stack.emulator_url, EMULATOR_DEFAULT_KEY, f"sdk {i}"
                )
            )
        ),
        "durable_operation": ms(
            await timed(
                lambda i: studio.generate_image(f"seq {i}", {"size": "256*256"}, USERS[i % 50])
            )
        ),
    }
    await provider.aclose()
    results["ratio_to_one_activity"] = round(
        results["durable_operation"]["p50_ms"] / results["one_activity_workflow"]["p50_ms"], 2
    )
    return results


async def throughput(
    stack: Stack, polling: Studio, webhooks: Studio, levels: list[int], sync_max: int
) -> list[dict[str, Any]]:
    rows = []
    for latency in (0, 10):
        stack.configure_emulator(processing_seconds=latency)
        studio = polling if latency == 0 else webhooks  # at 10 s the webhook ends the wait
        for n in levels:
            worker_pid = (stack.poll_worker if latency == 0 else stack.hook_worker).process.pid  # type: ignore[union-attr]
            idle = rss_mib(worker_pid)
            peak = [idle]

            sampler = asyncio.create_task(sample_peak(worker_pid, peak))
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(
                    studio.generate_image(
                        f"load {latency} {n} {i} {uuid.uuid4().hex[:6]}",
                        {"size": "256*256"},
                        USERS[i % 50],
                    )
                    for i in range(n)
                ),
                return_exceptions=True,
            )
            wall = time.perf_counter() - started
            sampler.cancel()
            failures = sum(isinstance(o, BaseException) for o in outcomes)
            row: dict[str, Any] = {
                "latency_s": latency,
                "concurrent": n,
                "mode": "webhooks" if latency else "polling",
                "durable_wall_s": round(wall, 2),
                "durable_ops_per_s": round(n / wall, 1),
                "failures": failures,
                "worker_rss_idle_mib": round(idle, 1),
                "worker_rss_peak_mib": round(peak[0], 1),
                "worker_mib_per_in_flight": round((peak[0] - idle) / n, 3) if n >= 100 else None,
            }
            if n <= sync_max:
                started = time.perf_counter()
                with ThreadPoolExecutor(40) as pool:
                    list(
                        pool.map(
                            lambda i: synchronous_operation(
                                stack.emulator_url, EMULATOR_DEFAULT_KEY, f"sync {i}"
                            ),
                            range(n),
                        )
                    )
                row["sync_40_threads_wall_s"] = round(time.perf_counter() - started, 2)
            rows.append(row)
            Console().print(row)
    stack.configure_emulator(processing_seconds=0)
    return rows


async def polls_per_operation(
    stack: Stack, polling: Studio, webhooks: Studio, jobs: int
) -> dict[str, Any]:
    stack.configure_emulator(processing_seconds=30)
    result = {}
    for name, studio in (("polling", polling), ("webhooks", webhooks)):
        tag = f"polls-{name}-{uuid.uuid4().hex[:6]}"
        done = await asyncio.gather(
            *(studio.generate_image(f"{tag} {i}", None, USERS[i]) for i in range(jobs))
        )
        ids = {r.prediction_ids[0] for r in done}
        counts = [p["polls"] for p in stack.predictions() if p["id"] in ids]
        result[name] = {
            "jobs": jobs,
            "job_seconds": 30,
            "mean": round(statistics.mean(counts), 2),
            "max": max(counts),
        }
    stack.configure_emulator(processing_seconds=0)
    return result


async def history_sizes(client: Any) -> dict[str, Any]:
    sizes, events = [], []
    async for execution in client.list_workflows("WorkflowType = 'ImageOperation'", limit=30):
        history = await client.get_workflow_handle(execution.id).fetch_history()
        sizes.append(len(json.dumps(history.to_json_dict())))
        events.append(len(history.events))
    return {
        "sampled": len(sizes),
        "mean_bytes": round(statistics.mean(sizes)),
        "max_bytes": max(sizes),
        "mean_events": round(statistics.mean(events), 1),
    }


def targets(report: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    o, t, p, h = report["overhead"], report["throughput"], report["polls"], report["history"]

    def row(latency: int, n: int) -> dict[str, Any] | None:
        return next((r for r in t if r["latency_s"] == latency and r["concurrent"] == n), None)

    checks = [
        (
            "overhead p50 ≤ 2x one-activity workflow",
            f"{o['ratio_to_one_activity']}x",
            "≤ 2x",
            o["ratio_to_one_activity"] <= 2,
        )
    ]
    best = max((r["durable_ops_per_s"] for r in t if r["latency_s"] == 0), default=0)
    checks.append(("throughput at 0 s latency", f"{best} ops/s", "≥ 30 ops/s", best >= 30))
    for n, limit in ((100, 13), (500, 30)):
        r = row(10, n)
        if r:
            checks.append(
                (
                    f"{n} concurrent at 10 s latency",
                    f"{r['durable_wall_s']} s",
                    f"≤ {limit} s",
                    r["durable_wall_s"] <= limit,
                )
            )
    checks.append(
        (
            "polls per 30 s job, no webhooks",
            f"max {p['polling']['max']}",
            "≤ 6",
            p["polling"]["max"] <= 6,
        )
    )
    checks.append(
        (
            "polls per 30 s job, webhooks",
            f"max {p['webhooks']['max']}",
            "≤ 1",
            p["webhooks"]["max"] <= 1,
        )
    )
    checks.append(
        ("history per operation", f"max {h['max_bytes']} B", "≤ 32 KB", h["max_bytes"] <= 32 * 1024)
    )
    per_op = [
        r["worker_mib_per_in_flight"]
        for r in t
        if r["worker_mib_per_in_flight"] is not None and r["latency_s"] == 10
    ]
    if per_op:
        checks.append(
            ("worker memory per in-flight op", f"{max(per_op)} MiB", "≤ 2 MiB", max(per_op) <= 2)
        )
    return checks


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, latency in zip(axes, (0, 10), strict=True):
        rows = [r for r in report["throughput"] if r["latency_s"] == latency]
        ns = [r["concurrent"] for r in rows]
        ax.plot(ns, [r["durable_wall_s"] for r in rows], "o-", label="durable (this engine)")
        sync = [
            (r["concurrent"], r["sync_40_threads_wall_s"])
            for r in rows
            if "sync_40_threads_wall_s" in r
        ]
        if sync:
            ax.plot(*zip(*sync, strict=True), "s--", label="synchronous, 40 threads")
        ax.set_xscale("log")
        ax.set_xlabel("concurrent operations")
        ax.set_ylabel("wall time (s)")
        ax.set_title(f"provider latency {latency} s")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts for a fast look")
    parser.add_argument(
        "--unsandboxed", action="store_true", help="run the worker without the workflow sandbox"
    )
    args = parser.parse_args()
    args.sequential = 10 if args.quick else 30
    args.concurrency = [1, 10, 100] if args.quick else [1, 10, 100, 500]
    args.sync_max = 100 if args.quick else 500
    args.poll_jobs = 5 if args.quick else 10
    report = asyncio.run(run(args))
    report["targets"] = [
        {"measure": m, "value": v, "target": tgt, "met": ok} for m, v, tgt, ok in targets(report)
    ]

    console = Console()
    overhead = Table(
        "path (0 s latency, sequential)", "p50 ms", "p95 ms", title="orchestration overhead"
    )
    for name, values in report["overhead"].items():
        if isinstance(values, dict):
            overhead.add_row(name, str(values["p50_ms"]), str(values["p95_ms"]))
    console.print(overhead)
    load = Table(
        "latency",
        "concurrent",
        "durable wall s",
        "ops/s",
        "sync 40 threads wall s",
        "worker MiB/in-flight",
        title="throughput",
    )
    for r in report["throughput"]:
        load.add_row(
            f"{r['latency_s']} s ({r['mode']})",
            str(r["concurrent"]),
            str(r["durable_wall_s"]),
            str(r["durable_ops_per_s"]),
            str(r.get("sync_40_threads_wall_s", "-")),
            str(r["worker_mib_per_in_flight"] or "-"),
        )
    console.print(load)
    verdict = Table("target", "measured", "goal", "met", title="targets")
    for t in report["targets"]:
        verdict.add_row(t["measure"], t["value"], t["target"], "yes" if t["met"] else "[red]NO[/]")
    console.print(verdict)
    RESULTS.mkdir(exist_ok=True)
    suffix = "-unsandboxed" if args.unsandboxed else ""
    (RESULTS / f"engine{suffix}.json").write_text(json.dumps(report, indent=2))
    plot(report, RESULTS / f"engine{suffix}.png")
    console.print(f"wrote {RESULTS / f'engine{suffix}.json'} and .png")


if __name__ == "__main__":
    main()
