"""Admin and audit commands: plans, credit, budgets, the books check and reconciliation."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from studio.cli_common import client, console
from studio.settings import get_settings

admin_app = typer.Typer(help="Assign plans, grant credit, set budgets.", no_args_is_help=True)
ledger_app = typer.Typer(help="Check and reconcile the books.", no_args_is_help=True)


def _ledger():  # type: ignore[no-untyped-def]
    from activities.resources import StudioResources

    return StudioResources.from_settings(get_settings()).ledger


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
    from studio.ledger.audit import verify

    problems = verify(_ledger().engine, user_id=user)
    for problem in problems:
        console.print(f"[red]{problem}[/]")
    if problems:
        raise typer.Exit(1)
    console.print("[green]books agree:[/] every counter equals the sum of its events")


@ledger_app.command("reconcile")
def reconcile(
    threshold: Annotated[str, typer.Option(help="Flag drift above this many USD.")] = "0.50",
) -> None:
    """Run ledger maintenance now: balance reconciliation and stale-hold expiry."""
    from workflows.maintenance import LedgerMaintenanceWorkflow, MaintenanceRequest

    settings = get_settings()

    async def _run() -> None:
        temporal = await client(settings)
        report = await temporal.execute_workflow(
            LedgerMaintenanceWorkflow.run,
            MaintenanceRequest(drift_threshold_usd=_amount(threshold)),
            id=f"ledger-maintenance-manual-{uuid.uuid4().hex[:8]}",
            task_queue=settings.task_queue,
        )
        console.print(report.reconcile.summary)
        console.print(
            f"stale holds examined {report.expiry.examined}, expired {len(report.expiry.expired)}"
        )

    asyncio.run(_run())
