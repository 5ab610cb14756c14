"""Declarative multi-step pipelines: definition, validation, quotes, fingerprints and resume."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from domain.pipelines.definition import (
        PipelineDefinition,
        StepDefinition,
        json_schema,
        load_definition,
    )
    from domain.pipelines.plan import PipelinePlan, PlannedStep, plan_pipeline
    from domain.pipelines.resolve import RunInputs, resolve_runs
    from domain.pipelines.steps import ResumeQuote, quote_with_reuse

__all__ = [
    "json_schema",
    "load_definition",
    "PipelineDefinition",
    "PipelinePlan",
    "plan_pipeline",
    "PlannedStep",
    "quote_with_reuse",
    "resolve_runs",
    "ResumeQuote",
    "RunInputs",
    "StepDefinition",
]

_HOME = {
    "PipelineDefinition": "domain.pipelines.definition",
    "StepDefinition": "domain.pipelines.definition",
    "json_schema": "domain.pipelines.definition",
    "load_definition": "domain.pipelines.definition",
    "PipelinePlan": "domain.pipelines.plan",
    "PlannedStep": "domain.pipelines.plan",
    "plan_pipeline": "domain.pipelines.plan",
    "RunInputs": "domain.pipelines.resolve",
    "resolve_runs": "domain.pipelines.resolve",
    "ResumeQuote": "domain.pipelines.steps",
    "quote_with_reuse": "domain.pipelines.steps",
}
"""The module each public name lives in; imported on first use, so a light import of one module
of this package does not pull in the rest."""


def __getattr__(name: str) -> Any:
    """Resolve a public name from its module on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
