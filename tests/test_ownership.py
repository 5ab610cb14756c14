"""Ledger rows are never handed to another user or another request (issue 11, item 2).

Before: ``Ledger.reserve`` returned any existing row for the operation id, and ``begin_submission``
reused the recorded prediction, so a new request landing on an old operation id (a colliding key
after Temporal's retention, or a run started by someone who can reach the frontend) got the old
run's output without a submit or a charge. Now such a run is refused and nothing of the owner's
is touched. The ids that collided are gone (``test_run_ids``); these tests force the same
operation id by starting the workflow directly, as an attacker with frontend access could.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from temporalio.client import Client, WorkflowFailureError

from activities.resources import StudioResources
from contracts.errors import OwnershipConflictError
from emulator.server import EmulatorServer
from ledger.service import Ledger
from ledger.submissions import SubmissionBook
from providers.catalogue import Operation
from studio.api import Studio
from tests.test_ledger import reserve
from workflows.operation import ImageOperationWorkflow


def test_reserve_refuses_another_users_or_another_requests_row(ledger: Ledger) -> None:
    first = reserve(ledger, "u-1", "op-1")
    assert reserve(ledger, "u-1", "op-1") == first, "a retry of the same request gets its hold"
    with pytest.raises(OwnershipConflictError):
        reserve(ledger, "u", "op-1")
    with pytest.raises(OwnershipConflictError):
        reserve(ledger, "u-1", "op-1", units=2)
    assert ledger.usage("u").cost_reserved == 0


def test_submission_refuses_another_users_or_another_bodys_record(ledger: Ledger) -> None:
    book = SubmissionBook(ledger.engine)
    args = {"submission_id": "op/v0/a0", "operation_id": "op", "model_path": "m"}
    book.begin_submission(user_id="u-1", body={"prompt": "green"}, **args)
    book.accept_submission("op/v0/a0", "pred-1")
    assert book.begin_submission(user_id="u-1", body={"prompt": "green"}, **args).prediction_id
    with pytest.raises(OwnershipConflictError):
        book.begin_submission(user_id="u", body={"prompt": "green"}, **args)
    with pytest.raises(OwnershipConflictError):
        book.begin_submission(user_id="u-1", body={"prompt": "blue"}, **args)


async def _rerun(studio: Studio, client: Client, operation_id: str, user: str, prompt: str) -> None:
    request = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user,
        prompt=prompt,
        options={"size": "512*512"},
        operation_id=operation_id,
    )
    await client.execute_workflow(
        ImageOperationWorkflow.run,
        request,
        id=f"{operation_id}-again-{uuid.uuid4().hex[:6]}",
        task_queue=studio.settings.task_queue,
    )


@pytest.mark.parametrize("same_user", [False, True])
async def test_an_old_operation_id_never_hands_out_its_result(
    studio: Studio,
    client: Client,
    emulator: EmulatorServer,
    resources: StudioResources,
    user_id: str,
    same_user: bool,
) -> None:
    green = f"green {uuid.uuid4().hex[:8]}"
    first = await studio.generate_image(green, user_id=user_id, options={"size": "512*512"})
    intruder = user_id if same_user else f"{user_id}-x"
    blue = f"blue {uuid.uuid4().hex[:8]}"
    with pytest.raises(WorkflowFailureError) as failure:
        await _rerun(studio, client, first.operation_id, intruder, blue)
    assert "another" in str(failure.value.cause) or "OwnershipConflict" in repr(failure.value)
    assert not [p for p in emulator.predictions() if (p["input"] or {}).get("prompt") == blue]
    events = resources.ledger.events(operation_id=first.operation_id)
    assert [e.kind for e in events].count("charge") == 1, "the owner's charge is untouched"
    assert resources.ledger.usage(intruder).cost_reserved == Decimal(0)
    assert resources.ledger.usage(user_id).cost_used == first.cost_usd
