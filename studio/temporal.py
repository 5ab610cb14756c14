"""Connecting to Temporal the same way everywhere (client API, worker, CLI, tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter

from studio.settings import StudioSettings


async def connect(
    settings: StudioSettings,
    *,
    interceptors: Sequence[Interceptor] = (),
    wait_seconds: float = 30.0,
) -> Client:
    """A client with the pydantic converter (every contract is a pydantic model).

    Retries while the server is still starting ("Frontend is not healthy yet"), up to ``wait_seconds``.
    """
    from studio.tracing import client_interceptors

    interceptors = [*interceptors, *client_interceptors(settings)]
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
                interceptors=interceptors,
            )
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


def ui_url(settings: StudioSettings, workflow_id: str) -> str:
    return f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"


def temporal_client(client: Client | None) -> Client:
    if client is None:
        raise RuntimeError(
            "this needs a Temporal connection: build the Studio with Studio.connect()"
        )
    return client
