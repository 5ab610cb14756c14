"""The benchmark's report: targets checked, tables printed, the chart drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


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
    floor_best = max(
        (
            f["ops_per_s"]
            for f in report.get("floor", [])
            if f["workflow"] == "one_activity" and f["latency_s"] == 0
        ),
        default=0,
    )
    if floor_best:
        ratio = round(best / floor_best, 2)
        checks.append(
            (
                "throughput at 0 s vs one-activity floor (same run)",
                f"{ratio}x ({best} / {floor_best} ops/s)",
                "≥ 0.8x",
                ratio >= 0.8,
            )
        )
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


def print_report(console: Console, report: dict[str, Any]) -> None:
    """The overhead, floor, throughput and target tables."""
    overhead = Table(
        "path (0 s latency, sequential)", "p50 ms", "p95 ms", title="orchestration overhead"
    )
    for name, values in report["overhead"].items():
        if isinstance(values, dict):
            overhead.add_row(name, str(values["p50_ms"]), str(values["p95_ms"]))
    console.print(overhead)
    floor = Table("floor workflow", "latency", "concurrent", "wall s", "runs/s", title="floor")
    for f in report.get("floor", []):
        floor.add_row(
            f["workflow"],
            f"{f['latency_s']} s",
            str(f["concurrent"]),
            str(f["wall_s"]),
            str(f["ops_per_s"]),
        )
    console.print(floor)
    load = Table(
        "latency",
        "concurrent",
        "durable wall s",
        "ops/s",
        "sync 40 threads wall s",
        "x one-activity",
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
            str(r.get("ratio_ops_to_one_activity", "-")),
            str(r["worker_mib_per_in_flight"] or "-"),
        )
    console.print(load)
    verdict = Table("target", "measured", "goal", "met", title="targets")
    for t in report["targets"]:
        verdict.add_row(t["measure"], t["value"], t["target"], "yes" if t["met"] else "[red]NO[/]")
    console.print(verdict)
