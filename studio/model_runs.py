"""``Studio.submit`` / ``Studio.run``: any catalogue model by id with its own input fields, the
way ``replicate.run(ref, input=)`` and ``fal_client.subscribe(app, arguments=)`` work."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import OperationRequest, OperationResult
from contracts.webhooks import CallerWebhook
from domain.options import OperationOptions
from providers.catalogue import Catalogue, ImageRole, Operation
from studio.handles import OperationHandle


def as_webhook(url: str | CallerWebhook | None) -> CallerWebhook | None:
    """A ``webhook_url`` argument as the webhook it asks for (every end announced)."""
    return CallerWebhook(url=url) if isinstance(url, str) else url


class ModelRuns(ABC):
    """What ``submit`` and ``run`` need from ``Studio``: the catalogue, request building and
    starting (``Studio.build_request``, ``Studio.start_operation``)."""

    catalogue: Catalogue

    @abstractmethod
    async def build_request(
        self,
        operation: Operation,
        *,
        user_id: str,
        options: OperationOptions | Mapping[str, Any] | None = None,
        prompt: str | None = None,
        images: Mapping[ImageRole, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        label: str | None = None,
        options_type: type[OperationOptions] = OperationOptions,
        pipeline_id: str | None = None,
        step: str | None = None,
        operation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> OperationRequest:
        """Validate and normalise a request (``Studio.build_request``)."""

    @abstractmethod
    async def start_operation(
        self, request: OperationRequest, *, webhook: CallerWebhook | None = None
    ) -> OperationHandle:
        """Start a validated request (``Studio.start_operation``)."""

    async def submit(
        self,
        model_id: str,
        input: Mapping[str, Any],
        *,
        user_id: str,
        operation: Operation | str | None = None,
        num_variations: int = 1,
        idempotency_key: str | None = None,
        webhook_url: str | CallerWebhook | None = None,
    ) -> OperationHandle:
        """Start any catalogue model with its own input fields (``studio models`` lists them).

        Image fields take what the named methods take (bytes, paths, URLs, data URIs,
        ``BlobRef``s); the model's first operation is used unless ``operation`` names another.
        ``webhook_url``: the run's end is POSTed there, signed (``studio.webhooks``).
        """
        spec = self.catalogue.get(model_id)
        chosen = Operation(operation) if operation is not None else spec.operations[0]
        if chosen not in spec.operations:
            raise InvalidRequestError(
                f"{model_id} does not serve {chosen}",
                [FieldError("operation", f"not served by {model_id}", ", ".join(spec.operations))],
            )
        images: dict[ImageRole, Any] = {}
        params: dict[str, Any] = {}
        for name, value in input.items():
            field = spec.field(name)
            if field is not None and field.role is not None:
                images[field.role] = value
            else:
                params[name] = value
        request = await self.build_request(
            chosen,
            user_id=user_id,
            options={"model": model_id, "num_variations": num_variations},
            idempotency_key=idempotency_key,
            label=f"{chosen.value.replace('_', ' ')} · {model_id}",
            images=images,
            params=params,
        )
        return await self.start_operation(request, webhook=as_webhook(webhook_url))

    async def run(
        self,
        model_id: str,
        input: Mapping[str, Any],
        *,
        user_id: str,
        operation: Operation | str | None = None,
        num_variations: int = 1,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> OperationResult:
        """``submit`` and wait for the stored result (at most ``timeout`` seconds)."""
        handle = await self.submit(
            model_id,
            input,
            user_id=user_id,
            operation=operation,
            num_variations=num_variations,
            idempotency_key=idempotency_key,
        )
        return await handle.result(timeout=timeout)
