"""Where a worker's time goes under load: py-spy samples the engine's worker while N operations
run at once against the emulator (0 s provider latency).

    .venv/bin/python bench/profile_worker.py --concurrent 100 --rounds 3

Writes bench/results/profile-worker.txt (top functions by own and total time) and a flame
graph (profile-worker.svg).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_engine import FLOOR_QUEUE, RESULTS, USERS, Stack  # noqa: E402
from bench.floor import FLOOR_WORKFLOWS, run_concurrently  # noqa: E402
from studio.api import Studio  # noqa: E402
from studio.temporal import connect  # noqa: E402


async def load_floor(stack: Stack, concurrent: int, rounds: int) -> float:
    client = await connect(stack.polling)
    return sum(
        [
            await run_concurrently(client, FLOOR_WORKFLOWS["one_activity"], FLOOR_QUEUE, concurrent)
            for _ in range(rounds)
        ]
    )


async def load(stack: Stack, concurrent: int, rounds: int) -> float:
    client = await connect(stack.polling)
    studio = Studio(client, stack.polling)
    started = time.perf_counter()
    for r in range(rounds):
        await asyncio.gather(
            *(
                studio.generate_image(
                    f"profile {r} {i} {time.time_ns()}",
                    options={"size": "256*256"},
                    user_id=USERS[i % 50],
                )
                for i in range(concurrent)
            )
        )
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--floor", action="store_true", help="load the one-activity floor workflow instead"
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    stack = Stack(Path(tempfile.mkdtemp(prefix="studio-profile-")), sandbox=True)
    stack.start()
    RESULTS.mkdir(exist_ok=True)
    try:
        asyncio.run(load(stack, 10, 1))  # warm-up
        target = stack.floor_worker if args.floor else stack.poll_worker
        spy_args = ["--pid", str(target.pid), "--rate", "200", "--nonblocking"]
        raw = RESULTS / ("profile-floor.raw" if args.floor else "profile-worker.raw")
        recorder = subprocess.Popen(
            [py_spy, "record", *spy_args, "--format", "raw", "-o", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        before = {c.name: cpu_seconds(c.pid) for c in stack.children}
        before["starter"] = cpu_seconds(os.getpid())
        wall = asyncio.run(
            (load_floor if args.floor else load)(stack, args.concurrent, args.rounds)
        )
        spent = {c.name: round(cpu_seconds(c.pid) - before[c.name], 2) for c in stack.children}
        spent["starter"] = round(cpu_seconds(os.getpid()) - before["starter"], 2)
        recorder.send_signal(2)
        recorder.wait(timeout=60)
    finally:
        stack.stop()
    ops = args.concurrent * args.rounds
    print(f"{ops} operations in {wall:.1f} s ({ops / wall:.1f} ops/s); raw stacks in {raw}")
    print("CPU seconds per process during the load:", spent)
    print("CPU ms per operation:", {k: round(v * 1000 / ops, 1) for k, v in spent.items()})


if __name__ == "__main__":
    main()
