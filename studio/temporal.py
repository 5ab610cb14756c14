"""Connecting to Temporal the same way everywhere (client API, worker, CLI, bench, tests).

Where the cluster is and how to authenticate comes from the SDK's environment configuration
(``temporalio.envconfig``): a TOML profile file (``TEMPORAL_CONFIG_FILE``, profile
``TEMPORAL_PROFILE``) and the ``TEMPORAL_*`` variables (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS_*``), so Temporal Cloud (API key) and
mTLS clusters work as the Temporal CLI does. ``STUDIO_TEMPORAL_ADDRESS`` and
``STUDIO_TEMPORAL_NAMESPACE``, when set, override the profile (the embedded stack sets them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime

from config.settings import StudioSettings


def connect_config(
    settings: StudioSettings, *, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``Client.connect``: profile, then ``TEMPORAL_*``, then STUDIO_*.

    ``environ`` replaces the process environment (tests); secrets in it (API key, client key)
    go to the connection only, never into logs or payloads.
    """
    profile = ClientConfigProfile.load(
        profile=settings.temporal_profile,
        config_source=settings.temporal_config_file,
        override_env_vars=environ,
    )
    config: dict[str, Any] = dict(profile.to_client_connect_config())
    explicit = settings.model_fields_set
    if "temporal_address" in explicit or "target_host" not in config:
        config["target_host"] = settings.temporal_address
    if "temporal_namespace" in explicit or "namespace" not in config:
        config["namespace"] = settings.temporal_namespace
    return config


def describe_target(config: Mapping[str, Any]) -> str:
    """``address/namespace (tls, api key)`` for logs: never the key or certificates themselves."""
    extras = [
        name
        for name, present in (
            ("tls", bool(config.get("tls"))),
            ("api key", bool(config.get("api_key"))),
        )
        if present
    ]
    suffix = f" ({', '.join(extras)})" if extras else ""
    return f"{config['target_host']}/{config['namespace']}{suffix}"


async def connect(
    settings: StudioSettings,
    *,
    interceptors: Sequence[Interceptor] = (),
    wait_seconds: float = 30.0,
    runtime: Runtime | None = None,
) -> Client:
    """A client with the pydantic converter (every contract is a pydantic model).

    Retries while the server is still starting ("Frontend is not healthy yet"), up to
    ``wait_seconds``. ``runtime`` carries the SDK's telemetry (``studio.metrics``).
    """
    from studio.tracing import client_interceptors

    interceptors = [*interceptors, *client_interceptors(settings)]
    config = connect_config(settings)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await Client.connect(
                **config,
                data_converter=pydantic_data_converter,
                interceptors=interceptors,
                runtime=runtime,
            )
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


def namespace(settings: StudioSettings) -> str:
    """The namespace runs live in, as the connection resolves it."""
    if "temporal_namespace" in settings.model_fields_set:
        return settings.temporal_namespace
    return str(connect_config(settings)["namespace"])


def ui_url(settings: StudioSettings, workflow_id: str) -> str:
    """The Temporal UI page of one workflow."""
    return f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{namespace(settings)}/workflows/{workflow_id}"


def temporal_client(client: Client | None) -> Client:
    """``client``, or a clear error when this ``Studio`` was built without a connection."""
    if client is None:
        raise RuntimeError(
            "this needs a Temporal connection: build the Studio with Studio.connect()"
        )
    return client
