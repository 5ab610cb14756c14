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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import (  # noqa: E402
    direct_operation,
    sdk_operation,
    synchronous_operation,
)
from bench.floor import floor_row, floor_throughput, sequential_ms  # noqa: E402
from bench.report import plot, print_report, targets  # noqa: E402
from config.settings import EMULATOR_DEFAULT_KEY, StudioSettings  # noqa: E402
from ledger.db import shared_engine  # noqa: E402
from ledger.service import Ledger  # noqa: E402
from providers.wavespeed.client import WaveSpeedClient  # noqa: E402
from studio.api import Studio  # noqa: E402
from studio.stack import (  # noqa: E402
    ChildProcess,
    dev_server,
    emulator_process,
    free_port,
    settings_env,
    wait_for_port,
)
from studio.temporal import connect  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
USERS = [f"bench-user-{i}" for i in range(50)]
WEBHOOK_SECRET = "whsec_emulator-secret"
FLOOR_QUEUE = "bench-floor"


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

    def __init__(
        self,
        work: Path,
        sandbox: bool,
        processes: int = 1,
        worker_env: dict[str, str] | None = None,
    ) -> None:
        self.work = work
        self.sandbox = sandbox
        self.processes = processes
        self.temporal_port, self.emulator_port, self.api_port = (free_port() for _ in range(3))
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.polling = self._settings("bench-poll")
        self.webhooks = self._settings(
            "bench-hook", webhook_public_url=self.api_url, webhook_fallback_seconds=60
        )
        extra = {
            "STUDIO_WORKER_SANDBOX": str(sandbox).lower(),
            "STUDIO_MAINTENANCE_EVERY_MINUTES": "0",
            **(worker_env or {}),  # every worker, the floor's too, gets the same knobs
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
        self.poll_worker = self._worker(
            "worker-poll", {**settings_env(self.polling), **extra}, ["-m", "worker"]
        )
        self.hook_worker = self._worker("worker-hook", hook_env, ["-m", "worker"])
        self.floor_worker = self._worker(
            "worker-floor",
            {**settings_env(self._settings(FLOOR_QUEUE)), **extra},
            [str(Path(__file__).resolve().parent / "floor_worker.py")],
        )
        self.api = ChildProcess(
            "api",
            [sys.executable, "-m", "studio.cli", "api", "--port", str(self.api_port)],
            work / "api.log",
            env=hook_env,
            cwd=Path(__file__).resolve().parent.parent,
        )

    def _settings(
        self,
        task_queue: str,
        webhook_public_url: str | None = None,
        webhook_fallback_seconds: float = 60.0,
    ) -> StudioSettings:
        """One worker's settings: the shared stack plus its own queue (and webhooks, if any)."""
        return StudioSettings(
            data_dir=self.work,
            temporal_address=f"127.0.0.1:{self.temporal_port}",
            wavespeed_base_url=self.emulator_url,
            maintenance_every_minutes=0,
            worker_sandbox=self.sandbox,
            task_queue=task_queue,
            webhook_public_url=webhook_public_url,
            webhook_fallback_seconds=webhook_fallback_seconds,
        )

    def _worker(self, name: str, env: dict[str, str], command: list[str]) -> ChildProcess:
        """One worker process, or with ``processes`` > 1 the pool of ``studio worker``."""
        if self.processes > 1 and command == ["-m", "worker"]:
            command = ["-m", "studio.cli", "worker", "--processes", str(self.processes)]
        elif self.processes > 1:  # the floor gets as many processes as the engine
            command = [str(Path(__file__).resolve().parent / "floor_pool.py"), str(self.processes)]
        return ChildProcess(
            name,
            [sys.executable, *command],
            self.work / f"{name}.log",
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )

    def start(self) -> None:
        for child in self.children:
            child.start()
        wait_for_port("127.0.0.1", self.temporal_port, timeout=60, name="dev server")
        wait_for_port("127.0.0.1", self.emulator_port, timeout=30, name="emulator")
        time.sleep(0.5)
        for child in self.children:  # a port taken meanwhile by another process: not ours
            if not child.running:
                raise RuntimeError(f"{child.name} exited at start; see {self.work}")
        ledger = Ledger(shared_engine(self.polling.ledger_url, True))
        ledger.sync_plans()
        for user in USERS:
            ledger.assign_plan(user, "enterprise")
        for child in (self.poll_worker, self.hook_worker, self.floor_worker, self.api):
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
    """Resident memory of a process and its children (a worker pool counts as one worker)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}").exists():
                total += rss_mib(int(child))
    return total


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="studio-engine-bench-"))
    stack = Stack(work, sandbox=not args.unsandboxed, processes=args.processes)
    stack.start()
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "worker_sandbox": not args.unsandboxed,
        "worker_processes": args.processes,
    }
    try:
        client = await connect(stack.polling)
        polling, webhooks = Studio(client, stack.polling), Studio(client, stack.webhooks)
        report["overhead"] = await overhead(stack, client, polling, args.sequential)
        report["floor"] = await floor_throughput(client, FLOOR_QUEUE, args.concurrency, (0, 10))
        report["throughput"] = await throughput(
            stack, polling, webhooks, args.concurrency, args.sync_max
        )
        add_floor_ratios(report["throughput"], report["floor"])
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

    provider = WaveSpeedClient(stack.emulator_url, EMULATOR_DEFAULT_KEY)
    loop = asyncio.get_running_loop()
    results: dict[str, Any] = {
        "one_activity_workflow": ms(await sequential_ms(client, FLOOR_QUEUE, n)),
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
                lambda i: studio.generate_image(
                    f"seq {i}", options={"size": "256*256"}, user_id=USERS[i % 50]
                )
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
            worker_pid = (stack.poll_worker if latency == 0 else stack.hook_worker).pid
            idle = rss_mib(worker_pid)
            peak = [idle]

            sampler = asyncio.create_task(sample_peak(worker_pid, peak))
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(
                    studio.generate_image(
                        f"load {latency} {n} {i} {uuid.uuid4().hex[:6]}",
                        options={"size": "256*256"},
                        user_id=USERS[i % 50],
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
            *(studio.generate_image(f"{tag} {i}", user_id=USERS[i]) for i in range(jobs))
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


def add_floor_ratios(rows: list[dict[str, Any]], floor: list[dict[str, Any]]) -> None:
    """Each engine row next to the one-activity floor at the same latency and concurrency."""
    for row in rows:
        base = floor_row(floor, "one_activity", row["latency_s"], row["concurrent"])
        if base:
            row["floor_one_activity_wall_s"] = base["wall_s"]
            row["ratio_ops_to_one_activity"] = round(
                row["durable_ops_per_s"] / base["ops_per_s"], 2
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts for a fast look")
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes (studio worker --processes N)"
    )
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
    print_report(console, report)
    RESULTS.mkdir(exist_ok=True)
    suffix = ("-unsandboxed" if args.unsandboxed else "") + (
        f"-{args.processes}proc" if args.processes > 1 else ""
    )
    (RESULTS / f"engine{suffix}.json").write_text(json.dumps(report, indent=2))
    plot(report, RESULTS / f"engine{suffix}.png")
    console.print(f"wrote {RESULTS / f'engine{suffix}.json'} and .png")


if __name__ == "__main__":
    main()
