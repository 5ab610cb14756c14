"""Each worker knob measured on its own: throughput at 0 s provider latency for the engine and
for the one-activity floor, both on the same worker settings, one configuration per stack.

    .venv/bin/python bench/knobs.py                 # every configuration (~6 min)
    .venv/bin/python bench/knobs.py --only default resource-tuner

Prints a table and writes bench/results/knobs.json. A knob only helps if it moves the engine's
ops/s (or its ratio to the floor) by more than the spread between rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import FLOOR_QUEUE, RESULTS, USERS, Stack  # noqa: E402
from bench.floor import FLOOR_WORKFLOWS, run_concurrently  # noqa: E402
from studio.api import Studio  # noqa: E402
from studio.temporal import connect  # noqa: E402

CONFIGURATIONS: dict[str, dict[str, str]] = {
    "default": {},
    "unsandboxed": {"STUDIO_WORKER_SANDBOX": "false"},
    "workflow-tasks-5": {"STUDIO_WORKER_MAX_WORKFLOW_TASKS": "5"},
    "workflow-tasks-50": {"STUDIO_WORKER_MAX_WORKFLOW_TASKS": "50"},
    "pollers-10": {"STUDIO_WORKER_WORKFLOW_POLLERS": "10", "STUDIO_WORKER_ACTIVITY_POLLERS": "10"},
    "pollers-2": {"STUDIO_WORKER_WORKFLOW_POLLERS": "2", "STUDIO_WORKER_ACTIVITY_POLLERS": "2"},
    "poller-autoscaling": {
        "STUDIO_WORKER_POLLER_AUTOSCALING": "true",
        "STUDIO_WORKER_WORKFLOW_POLLERS": "20",
        "STUDIO_WORKER_ACTIVITY_POLLERS": "20",
    },
    "resource-tuner": {"STUDIO_WORKER_TUNER": "resource-based"},
    "sticky-cache-100": {"STUDIO_WORKER_MAX_CACHED_WORKFLOWS": "100"},
}


async def engine_round(studio: Studio, n: int) -> float:
    """Operations per second for ``n`` generate operations started at once."""
    started = time.perf_counter()
    await asyncio.gather(
        *(
            studio.generate_image(
                f"knob {i} {uuid.uuid4().hex[:8]}",
                options={"size": "256*256"},
                user_id=USERS[i % len(USERS)],
            )
            for i in range(n)
        )
    )
    return n / (time.perf_counter() - started)


async def measure(name: str, env: dict[str, str], n: int, rounds: int) -> dict[str, Any]:
    """One configuration on a fresh stack: warm up, then ``rounds`` of engine and floor."""
    stack = Stack(Path(tempfile.mkdtemp(prefix=f"studio-knob-{name}-")), True, worker_env=env)
    stack.start()
    try:
        client = await connect(stack.polling)
        studio = Studio(client, stack.polling)
        await engine_round(studio, 20)  # imports, caches, connection pools
        engine, floor = [], []
        for _ in range(rounds):
            engine.append(await engine_round(studio, n))
            wall = await run_concurrently(client, FLOOR_WORKFLOWS["one_activity"], FLOOR_QUEUE, n)
            floor.append(n / wall)
    finally:
        stack.stop()
    return {
        "configuration": name,
        "env": env,
        "concurrent": n,
        "engine_ops_per_s": [round(v, 1) for v in engine],
        "floor_ops_per_s": [round(v, 1) for v in floor],
        "engine_median": round(statistics.median(engine), 1),
        "floor_median": round(statistics.median(floor), 1),
        "ratio_to_floor": round(statistics.median(engine) / statistics.median(floor), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGURATIONS), default=None)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = args.only or list(CONFIGURATIONS)
    rows = []
    for name in names:
        rows.append(asyncio.run(measure(name, CONFIGURATIONS[name], args.concurrent, args.rounds)))
        Console().print(rows[-1])
    table = Table(title=f"worker knobs, {args.concurrent} concurrent at 0 s, {args.rounds} rounds")
    for column in ("configuration", "engine ops/s (rounds)", "floor ops/s", "engine / floor"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["configuration"],
            f"{row['engine_median']} ({', '.join(map(str, row['engine_ops_per_s']))})",
            str(row["floor_median"]),
            f"{row['ratio_to_floor']}x",
        )
    Console().print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "knobs.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
