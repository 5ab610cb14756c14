"""Fault rules: what a test wants to go wrong, on which route, for which request, how often.

Rules are consumed in the order they were added. A request takes at most one *request* fault
(the first matching one: ``http_error``, ``reset``, ``lost_response``, ``slow``, ``refuse``); a submit also
takes at most one rule of each *prediction* group (outcome, output expiry, each webhook fault),
which then shapes that prediction for its whole life.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Route = Literal[
    "submit",
    "result",
    "upload",
    "balance",
    "history",
    "output",
    "stability",
    "stability_result",
    "stability_balance",
    "huggingface",
    "gemini",
    "any",
]
"""WaveSpeed routes, then Stability's (``stability``: any paid v2beta POST, matched by its path
in ``match_model``, e.g. ``stable-image/generate/ultra``), then Hugging Face's and Gemini's paid
POSTs (matched by model id, e.g. ``gemini-2.5-flash-image``)."""
Kind = Literal[
    "http_error",
    "reset",
    "lost_response",
    "slow",
    "refuse",
    "fail_prediction",
    "timeout_prediction",
    "cancel_prediction",
    "expire_outputs",
    "webhook_drop",
    "webhook_duplicate",
    "webhook_delay",
    "webhook_bad_signature",
    "webhook_stale",
]

REQUEST_KINDS: frozenset[str] = frozenset(
    {"http_error", "reset", "lost_response", "slow", "refuse"}
)
"""Faults that change how one HTTP exchange goes (``refuse``: a content refusal in the provider's
own shape, which only the Hugging Face and Gemini routes have)."""
REFUSING_ROUTES: frozenset[str] = frozenset({"huggingface", "gemini"})

OUTCOME_KINDS: frozenset[str] = frozenset(
    {"fail_prediction", "timeout_prediction", "cancel_prediction"}
)
WEBHOOK_KINDS: frozenset[str] = frozenset(
    {"webhook_drop", "webhook_duplicate", "webhook_delay", "webhook_bad_signature", "webhook_stale"}
)
PREDICTION_KINDS: frozenset[str] = OUTCOME_KINDS | WEBHOOK_KINDS | {"expire_outputs"}
"""Faults attached to a prediction when it is created (they only match submits)."""

#: Default ``error`` text per task code (§1.6 of the API notes).
TASK_ERROR_MESSAGES: dict[int, str] = {
    1200: "Content moderation: the input or output contains sensitive information.",
    1400: "Missing parameter.",
    1401: "Invalid parameter.",
    1402: "Failed to download image from the provided URL.",
    1403: "Task execution failed.",
    1405: "Task failed.",
    5000: "Internal error.",
    5003: "Service unavailable.",
    5004: "Timeout.",
}


class FaultRule(BaseModel):
    """One thing to break; ``times`` requests consume it (-1 = never used up)."""

    model_config = ConfigDict(extra="forbid")

    route: Route = "any"
    kind: Kind
    times: int = Field(default=1, ge=-1)
    match_model: str | None = None
    """Model path the request must concern (the submit path, or the polled prediction's model)."""
    match_prompt: str | None = None
    """Substring of the submit body's ``prompt`` or ``text``."""
    status: int = Field(default=500, ge=100, le=599)
    retry_after: float | None = None
    delay: float = Field(default=0, ge=0)
    code: int = 1403
    message: str | None = None

    def group(self) -> str:
        """Rules of one group exclude each other on a single request/prediction."""
        if self.kind in REQUEST_KINDS:
            return "request"
        if self.kind in OUTCOME_KINDS:
            return "outcome"
        return self.kind

    def matches(self, route: str, model: str | None, prompt: str | None) -> bool:
        if self.kind in PREDICTION_KINDS and route != "submit":
            return False
        if self.kind == "refuse" and route not in REFUSING_ROUTES:
            return False
        if self.route not in ("any", route):
            return False
        if self.match_model is not None and self.match_model != model:
            return False
        return self.match_prompt is None or (prompt is not None and self.match_prompt in prompt)

    def task_message(self) -> str:
        return self.message or TASK_ERROR_MESSAGES.get(self.code, "Task failed.")


def as_rules(value: FaultRule | Mapping[str, Any] | Iterable[Any]) -> list[FaultRule]:
    """Accept one rule or a list, as models or plain dicts (the admin API takes both)."""
    if isinstance(value, (FaultRule, Mapping)):
        value = [value]
    return [r if isinstance(r, FaultRule) else FaultRule.model_validate(r) for r in value]


class FaultBook:
    """The active rules, safe to use from the server thread and a test thread at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[tuple[FaultRule, list[int]]] = []  # rule, [remaining]

    def add(self, rules: Iterable[FaultRule]) -> None:
        with self._lock:
            self._rules.extend((r, [r.times]) for r in rules)

    def replace(self, rules: Iterable[FaultRule]) -> None:
        with self._lock:
            self._rules = [(r, [r.times]) for r in rules]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def describe(self) -> list[dict[str, Any]]:
        """The active rules as JSON-ready dicts, each with the count it has left."""
        with self._lock:
            return [{**r.model_dump(), "remaining": left[0]} for r, left in self._rules]

    def take_request_fault(
        self, route: str, model: str | None, prompt: str | None
    ) -> FaultRule | None:
        """Consume and return the first matching request-level rule."""
        taken = self._take(route, model, prompt, REQUEST_KINDS)
        return taken[0] if taken else None

    def take_prediction_faults(self, model: str, prompt: str | None) -> list[FaultRule]:
        """Consume at most one matching rule per prediction group for a new prediction."""
        return self._take("submit", model, prompt, PREDICTION_KINDS)

    def _take(
        self, route: str, model: str | None, prompt: str | None, kinds: frozenset[str]
    ) -> list[FaultRule]:
        taken: list[FaultRule] = []
        groups: set[str] = set()
        with self._lock:
            for rule, left in self._rules:
                if rule.kind not in kinds or rule.group() in groups:
                    continue
                if left[0] == 0 or not rule.matches(route, model, prompt):
                    continue
                if left[0] > 0:
                    left[0] -= 1
                taken.append(rule)
                groups.add(rule.group())
            self._rules = [(r, left) for r, left in self._rules if left[0] != 0]
        return taken
