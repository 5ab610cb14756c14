"""Pure helpers of ``ImageOperation``: request bodies and the failure of a run (no I/O)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.failures import FailureType
    from contracts.operation import (
        OperationPhase,
        OperationRequest,
        PreparedOperation,
        StoreRequest,
        SubmitRequest,
        VariationResult,
    )


def store_request(
    prepared: PreparedOperation, prediction_id: str, outputs: list[Any]
) -> StoreRequest:
    return StoreRequest(
        prediction_id=prediction_id,
        user_id=prepared.request.user_id,
        outputs=outputs,
        output_kind=prepared.output_kind,
        expected_format=prepared.output_format,
        provider=prepared.provider,
    )


def submit_for(
    prepared: PreparedOperation,
    body: dict[str, Any],
    variation: str,
    attempt: int,
    route_step: int | None,
    look: bool,
    may_fall_back: bool = False,
) -> SubmitRequest:
    """The submit activity's input; route entries get their own ids (``…/v0/r1/a0``)."""
    request = prepared.request
    step = "" if route_step is None else f"/r{route_step}"
    return SubmitRequest(
        submission_id=f"{request.operation_id}/{variation}{step}/a{attempt}",
        operation_id=request.operation_id,
        user_id=request.user_id,
        model_path=prepared.model_path,
        body=body,
        look=store_request(prepared, "", []) if look else None,
        provider=prepared.provider,
        price_usd=prepared.unit_price_usd if route_step is not None else None,
        output_kind=prepared.output_kind,
        may_fall_back=may_fall_back,
    )


def submit_slot(
    prepared: PreparedOperation, lock: asyncio.Lock
) -> contextlib.AbstractAsyncContextManager[Any]:
    """Variations of a model without a seed have identical bodies: submit them one after the
    other, so an ambiguous submit can only ever match its own prediction."""
    if prepared.takes_seed or prepared.quantity == 1:
        return contextlib.nullcontext()
    return lock


def variation_body(
    inputs: dict[str, Any], index: int, vary_seed: bool, takes_seed: bool
) -> dict[str, Any]:
    """Variation i of a fixed seed uses seed + i (the seed system's rule). Without a seed, each
    variation gets its own random one (drawn deterministically by the workflow): identical
    bodies would make an ambiguous submit's reconciliation unable to tell whose prediction it is."""
    body = dict(inputs)
    seed = body.get("seed")
    if vary_seed and index and isinstance(seed, int) and seed >= 0:
        body["seed"] = seed + index
    elif takes_seed and (not isinstance(seed, int) or seed < 0):
        body["seed"] = workflow.random().randint(0, 2**31 - 1)
    return body


def has_blobs(value: Any) -> bool:
    if isinstance(value, dict):
        return "sha256" in value or any(has_blobs(v) for v in value.values())
    if isinstance(value, list):
        return any(has_blobs(v) for v in value)
    return False


def all_failed(variations: list[VariationResult]) -> ApplicationError:
    first = variations[0]
    codes = sorted({v.provider_code for v in variations if v.provider_code is not None})
    if len(variations) == 1:
        message = first.error or "the operation failed"
    else:
        message = f"all {len(variations)} variations failed; first: {first.error}"
    failure_type = FailureType.PREDICTION_FAILED if codes else FailureType.OPERATION_FAILED
    return ApplicationError(
        message,
        {"provider_codes": codes, "variations": [v.model_dump(mode="json") for v in variations]},
        type=failure_type,
        non_retryable=True,
    )


def current_details(
    phase: OperationPhase,
    detail: str,
    request: OperationRequest,
    variations_done: int,
    prediction_ids: Sequence[str],
    cost: Decimal,
) -> str:
    """The run's "current details" in the Temporal UI (markdown): phase, request, progress."""
    lines = [
        f"**{phase.value}** · {detail}",
        "",
        f"- operation: `{request.operation}` · model: `{request.model_id}` · user: `{request.user_id}`",
        f"- variations: {variations_done}/{request.num_variations} done",
    ]
    if prediction_ids:
        lines.append(f"- predictions: {', '.join(prediction_ids)}")
    if cost:
        lines.append(f"- charged: ${cost}")
    return "\n".join(lines)
