"""Property-based run over the HTTP API's OpenAPI schema (schemathesis): no input makes it 5xx."""

from __future__ import annotations

import asyncio

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import ApiServer

EXAMPLES_PER_OPERATION = 25


def fuzz(api: ApiServer) -> list[str]:
    schema = schemathesis.openapi.from_dict(httpx.get(f"{api.url}/openapi.json", timeout=10).json())
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            # Real credentials, so generated bodies reach validation and the workflows behind it.
            case.headers = {**(case.headers or {}), **api.headers("fuzz-user")}
            response = case.call(base_url=api.url, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        check()
    print("status codes seen:", dict(sorted(statuses.items())))
    assert len(statuses) > 3, "the run should reach more than authentication errors"
    return failures


async def test_no_generated_request_makes_the_api_fail_with_5xx(api_server: ApiServer) -> None:
    failures = await asyncio.to_thread(fuzz, api_server)
    assert failures == []
