"""``CallerWebhook``: start a run as a child, wait for its end, tell the caller (signed, retried).

The run itself is the usual ``ImageOperation`` or ``ImagePipeline`` under its usual id, so status,
events, cancel and the UI treat it like any other; this parent only adds the delivery. The child
is abandoned (not cancelled) if the parent is ever terminated.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, CancelledError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookActivities
    from contracts.webhooks import WebhookDelivery, WebhookEvent, WebhookRun
    from workflows import policies
    from workflows.operation import ImageOperationWorkflow
    from workflows.pipeline import ImagePipelineWorkflow


@workflow.defn(name="CallerWebhook")
class CallerWebhookWorkflow:
    @workflow.run
    async def run(self, request: WebhookRun) -> str:
        """The event delivered (``succeeded``, ``failed``, ``cancelled``) or ``filtered``."""
        event: WebhookEvent
        data: dict[str, Any] = {"id": request.run_id}
        try:
            result = await self._child(request)
            event, data["result"] = "succeeded", result.model_dump(mode="json")
        except ChildWorkflowError as exc:
            cause = exc.cause
            while isinstance(cause, ChildWorkflowError) and cause.cause is not None:
                cause = cause.cause
            if isinstance(cause, CancelledError):
                event, data["error"] = "cancelled", {"error": "Cancelled", "message": "cancelled"}
            else:
                kind = cause.type if isinstance(cause, ApplicationError) else None
                message = cause.message if isinstance(cause, ApplicationError) else str(cause)
                event, data["error"] = "failed", {"error": kind or "Failed", "message": message}
        data["status"] = event
        if event not in request.webhook.events:
            return "filtered"
        event_type = f"{request.kind}.{event}"
        await workflow.execute_activity_method(
            WebhookActivities.deliver_webhook,
            WebhookDelivery(
                url=request.webhook.url,
                message_id=f"msg_{request.run_id}.{event}",
                event_type=event_type,
                payload={
                    "type": event_type,
                    "timestamp": workflow.now().isoformat(),
                    "data": data,
                },
            ),
            summary=f"webhook {event_type}",
            start_to_close_timeout=policies.WEBHOOK.start_to_close,
            schedule_to_close_timeout=policies.WEBHOOK.schedule_to_close,
            retry_policy=policies.WEBHOOK.retry,
        )
        return event

    async def _child(self, request: WebhookRun) -> Any:
        attributes = TypedSearchAttributes(
            [
                SearchAttributePair(SearchAttributeKey.for_keyword(name), value)
                for name, value in request.search_attributes.items()
            ]
        )
        options: dict[str, Any] = {
            "id": request.run_id,
            "search_attributes": attributes,
            "parent_close_policy": ParentClosePolicy.ABANDON,
            "static_summary": request.summary or None,
            "static_details": request.details or None,
        }
        if request.operation is not None:
            return await workflow.execute_child_workflow(
                ImageOperationWorkflow.run, request.operation, **options
            )
        assert request.pipeline is not None, "a WebhookRun names an operation or a pipeline"
        return await workflow.execute_child_workflow(
            ImagePipelineWorkflow.run, request.pipeline, **options
        )
