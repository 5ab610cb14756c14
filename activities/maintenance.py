"""Ledger housekeeping run on a schedule: reconcile each provider's balance with its own provider
costs, expire holds whose workflow vanished."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from decimal import Decimal

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.failures import from_provider_error
from activities.resources import StudioResources
from contracts.maintenance import (
    ExpiryReport,
    MaintenanceRequest,
    ProviderReconcile,
    ReconcileReport,
)
from ledger.reconcile import (
    DriftLimits,
    ListedPrediction,
    Reconciler,
    ReconciliationInfo,
    Window,
)
from ledger.values import DEFAULT_PROVIDER
from providers.base import PredictionProvider
from providers.errors import ProviderError
from providers.wavespeed.errors import WaveSpeedError

LIST_PAGE_SIZE = 100
MAX_LIST_PAGES = 50
"""Beyond 5,000 predictions in one window, matching is skipped (the drift is still checked)."""


class MaintenanceActivities:
    def __init__(self, resources: StudioResources) -> None:
        self._r = resources
        self._reconciler = Reconciler(resources.ledger.engine)

    @activity.defn(name="reconcile_balance")
    async def reconcile_balance(self, threshold_usd: Decimal) -> ReconcileReport:
        """Runs started before ``reconcile_window`` existed (default limits otherwise)."""
        return await self.reconcile_window(MaintenanceRequest(drift_threshold_usd=threshold_usd))

    @activity.defn(name="reconcile_window")
    async def reconcile_window(self, request: MaintenanceRequest) -> ReconcileReport:
        """Snapshot each provider's balance, then reconcile everything since its last reconciled
        window against its own provider costs. WaveSpeed's figures stay the report's top level;
        ``providers`` has every configured provider, those without a balance as not measurable."""
        try:
            balance = await self._r.provider.balance()
        except WaveSpeedError as exc:
            raise from_provider_error(exc) from None
        info = await self._reconcile(self._r.provider, DEFAULT_PROVIDER, balance, request)
        entries = [_entry(DEFAULT_PROVIDER, self._r.provider, balance, info)]
        for name, client in sorted(self._r.others.items()):
            entries.append(await self._other(name, client, request))
        unmeasured = sorted(set(self._r.inline) - set(self._r.others) - {DEFAULT_PROVIDER})
        for name in unmeasured:
            entries.append(await self._unmeasured(name, info))
        if info is None:
            report = ReconcileReport(
                balance_usd=balance,
                reconciled=False,
                summary="first snapshot; nothing to compare yet",
            )
        else:
            report = info.report(balance)
        others = entries[1:]
        report = report.model_copy(
            update={
                "providers": entries,
                "flagged": any(e.flagged for e in entries),
                "summary": report.summary + "".join(f"\n- {e.summary}" for e in others),
            }
        )
        for entry in entries:
            if entry.flagged:
                activity.logger.warning("ledger drift flagged: %s", entry.summary)
        return report

    async def _reconcile(
        self,
        client: PredictionProvider,
        name: str,
        balance: Decimal,
        request: MaintenanceRequest,
    ) -> ReconciliationInfo | None:
        """Snapshot one provider's balance and reconcile its window (None: first snapshot)."""
        url = client.base_url
        await asyncio.to_thread(self._reconciler.snapshot, url, balance)
        window = await asyncio.to_thread(self._reconciler.window, url, name)
        if window is None:
            return None
        listed, problem = None, ""
        if client.lists_predictions:
            listed, problem = await self._listed(client, window)
        return await asyncio.to_thread(
            functools.partial(
                self._reconciler.reconcile,
                window,
                DriftLimits.of(request),
                listed=listed,
                grace=timedelta(seconds=request.match_grace_seconds),
                bills_failed=self._r.settings.provider_bills_failed,
                reset_cumulative=request.reset_cumulative,
                listing_problem=problem,
            )
        )

    async def _other(
        self, name: str, client: PredictionProvider, request: MaintenanceRequest
    ) -> ProviderReconcile:
        """A provider besides WaveSpeed with a balance (Stability's credits): a balance it cannot
        read is reported, not raised (its window simply grows until the next run)."""
        try:
            balance = await client.balance()
        except ProviderError as exc:
            return ProviderReconcile(
                provider=name,
                provider_url=client.base_url,
                summary=f"{name}: balance not read ({exc}); reconciled with the next window",
            )
        info = await self._reconcile(client, name, balance, request)
        return _entry(name, client, balance, info)

    async def _unmeasured(self, name: str, period: ReconciliationInfo | None) -> ProviderReconcile:
        """A provider without a balance endpoint: its recorded costs over WaveSpeed's window."""
        if period is None:
            return ProviderReconcile(
                provider=name,
                measurable=False,
                summary=f"{name}: no balance endpoint, drift not measurable; no window yet",
            )
        start, end = period.window_start, period.window_end
        cost = await asyncio.to_thread(self._reconciler.recorded_cost, name, start, end)
        return ProviderReconcile(
            provider=name,
            measurable=False,
            ledger_cost_usd=cost,
            window_start=start,
            window_end=end,
            summary=(
                f"{name}: no balance endpoint, drift not measurable; ledger provider cost "
                f"${cost} ({start:%Y-%m-%d %H:%M:%S} → {end:%H:%M:%S} UTC)"
            ),
        )

    async def _listed(
        self, client: PredictionProvider, window: Window
    ) -> tuple[list[ListedPrediction] | None, str]:
        """The provider's predictions created in the window's listing range, or why not."""
        after, before = window.listing_range()
        found: list[ListedPrediction] = []
        try:
            for page in range(1, MAX_LIST_PAGES + 1):
                items = (
                    await client.list_predictions(
                        created_after=after,
                        created_before=before,
                        include_inputs=False,
                        page=page,
                        page_size=LIST_PAGE_SIZE,
                    )
                ).items
                found += [ListedPrediction(p.id, p.status, p.model, p.created_at) for p in items]
                if len(items) < LIST_PAGE_SIZE:
                    return found, ""
        except WaveSpeedError as exc:
            return None, f"predictions not matched: the provider's list failed ({exc})"
        return None, f"predictions not matched: more than {len(found)} in the window"

    @activity.defn(name="expire_stale_reservations")
    async def expire_stale_reservations(self) -> ExpiryReport:
        """Release holds past their expiry whose workflow is no longer running."""
        stale = await asyncio.to_thread(self._r.ledger.stale_reservations)
        client = activity.client()
        expired = []
        for hold in stale:
            if hold.workflow_id:
                try:
                    description = await client.get_workflow_handle(hold.workflow_id).describe()
                    status = description.status
                    if status == WorkflowExecutionStatus.RUNNING:
                        continue  # still working: its own settle/release will close the hold
                    ended = status.name.lower() if status is not None else "in an unknown state"
                    reason = f"workflow {hold.workflow_id} ended {ended} without closing it"
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    reason = f"workflow {hold.workflow_id} no longer exists"
            else:
                reason = "no workflow recorded"
            if await asyncio.to_thread(
                self._r.ledger.expire, operation_id=hold.operation_id, reason=reason
            ):
                expired.append(hold.operation_id)
                activity.logger.warning("expired hold %s: %s", hold.operation_id, reason)
        return ExpiryReport(examined=len(stale), expired=expired)


def _entry(
    name: str, client: PredictionProvider, balance: Decimal, info: ReconciliationInfo | None
) -> ProviderReconcile:
    """One provider's entry: its reconciled window, or its first snapshot."""
    if info is not None:
        return info.provider_report(balance, client.base_url).model_copy(
            update={"summary": f"{name}: {info.describe()}"}
        )
    return ProviderReconcile(
        provider=name,
        provider_url=client.base_url,
        balance_usd=balance,
        summary=f"{name}: first snapshot; nothing to compare yet",
    )
