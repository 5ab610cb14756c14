"""Admin and audit commands: plans, credit, budgets, the books check and reconciliation."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from config.settings import get_settings
from contracts.maintenance import ReconcileReport, UnmatchedPrediction
from ledger.service import Ledger, open_ledger
from studio.cli_common import client, console

admin_app = typer.Typer(help="Assign plans, grant credit, set budgets.", no_args_is_help=True)
ledger_app = typer.Typer(help="Check and reconcile the books.", no_args_is_help=True)


def _ledger() -> Ledger:
    settings = get_settings()
    return open_ledger(settings.ledger_url, auto_migrate=settings.auto_migrate)


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        console.print(f"[red]not an amount: {text!r}[/]")
        raise typer.Exit(2) from None


@admin_app.command("plan")
def assign_plan(
    user: str,
    plan: str,
    anchor_day: Annotated[
        int | None, typer.Option(help="Day of month (1-28) the billing period starts.")
    ] = None,
) -> None:
    """Put a user on a plan (free, basic, pro, enterprise)."""
    try:
        _ledger().assign_plan(user, plan, anchor_day=anchor_day)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print(f"{user} is on {plan}")


@admin_app.command("credit")
def grant_credit(user: str, amount: str) -> None:
    """Add USD to a user's monthly budget, on top of the plan's cap."""
    _ledger().grant_credit(user, _amount(amount))
    console.print(f"granted ${amount} to {user}")


@admin_app.command("cap")
def set_cap(
    user: str,
    amount: Annotated[str, typer.Argument(help="USD per month, or 'plan' for the plan's cap.")],
) -> None:
    """Give a user a custom monthly cost cap."""
    _ledger().set_monthly_cap(user, None if amount == "plan" else _amount(amount))
    console.print(f"{user}: monthly cap {'from the plan' if amount == 'plan' else '$' + amount}")


@ledger_app.command("check")
def check(user: Annotated[str | None, typer.Option(help="Only this user.")] = None) -> None:
    """Prove every counter equals the sum of its events (exit 1 if not)."""
    from ledger.audit import verify

    problems = verify(_ledger().engine, user_id=user)
    for problem in problems:
        console.print(f"[red]{problem}[/]")
    if problems:
        raise typer.Exit(1)
    console.print("[green]books agree:[/] every counter equals the sum of its events")


@ledger_app.command("reconcile")
def reconcile(
    threshold: Annotated[
        str | None, typer.Option(help="Flag a window's drift above this many USD.")
    ] = None,
    ratio: Annotated[
        str | None, typer.Option(help="... or above this share of its spend (0.01 = 1%).")
    ] = None,
    cumulative: Annotated[
        str | None, typer.Option(help="Flag the running total of drift above this many USD.")
    ] = None,
    reset_cumulative: Annotated[
        bool, typer.Option(help="Start the running total afresh (after a top-up).")
    ] = False,
) -> None:
    """Run ledger maintenance now: balance reconciliation and stale-hold expiry (exit 1 if
    flagged)."""
    from studio.schedules import maintenance_request
    from workflows.maintenance import LedgerMaintenanceWorkflow

    settings = get_settings()
    changes: dict[str, object] = {"reset_cumulative": reset_cumulative}
    for name, value in (
        ("drift_threshold_usd", threshold),
        ("drift_threshold_ratio", ratio),
        ("cumulative_threshold_usd", cumulative),
    ):
        if value is not None:
            changes[name] = _amount(value)
    request = maintenance_request(settings, **changes)

    async def _run() -> bool:
        temporal = await client(settings)
        report = await temporal.execute_workflow(
            LedgerMaintenanceWorkflow.run,
            request,
            id=f"ledger-maintenance-manual-{uuid.uuid4().hex[:8]}",
            task_queue=settings.task_queue,
        )
        print_reconcile(report.reconcile)
        console.print(
            f"stale holds examined {report.expiry.examined}, expired {len(report.expiry.expired)}"
        )
        return report.reconcile.flagged

    if asyncio.run(_run()):
        raise typer.Exit(1)


def print_reconcile(report: ReconcileReport) -> None:
    """One block per provider (balance, its own costs, drift), or the single summary of a
    report from before per-provider reconciliation."""
    if not report.providers:
        console.print(report.summary)
        _print_unmatched(report.unmatched)
        return
    for entry in report.providers:
        balance = "no balance endpoint" if not entry.measurable else f"balance ${entry.balance_usd}"
        if entry.measurable and entry.balance_usd is None:
            balance = "balance not read"
        colour = "red" if entry.flagged else "green" if entry.reconciled else "yellow"
        console.print(f"[bold {colour}]{entry.provider}[/] ({balance})")
        console.print(f"  {entry.summary.removeprefix(entry.provider + ': ')}")
        _print_unmatched(entry.unmatched)


def _print_unmatched(unmatched: list[UnmatchedPrediction]) -> None:
    for u in unmatched:
        console.print(f"  unmatched ({u.side}): {u.prediction_id} {u.model} {u.status}")
