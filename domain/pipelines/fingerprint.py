"""What makes two step runs the same: operation, model, normalised inputs (images by content
hash), seed and variation count. Equal fingerprints may share stored outputs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from contracts.operation import OperationRequest, StoredOutput
from providers.catalogue import ModelSpec


def _by_content(value: Any) -> Any:
    if isinstance(value, dict) and "sha256" in value:
        return {"sha256": value["sha256"]}
    if isinstance(value, dict):
        return {k: _by_content(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_by_content(v) for v in value]
    return value


def fingerprint(payload: dict[str, Any]) -> str:
    """sha256 of ``payload`` in canonical JSON, with images reduced to their content hash."""
    canonical = json.dumps(_by_content(payload), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_fingerprint(request: OperationRequest) -> str:
    """The fingerprint of an operation request: operation, model, inputs, variations."""
    return fingerprint(
        {
            "operation": request.operation,
            "model": request.model_id,
            "inputs": request.inputs,
            "variations": request.num_variations,
        }
    )


def crop_fingerprint(image_sha256: str, formats: list[str]) -> str:
    """The fingerprint of a local crop: the image's content hash and the formats."""
    return fingerprint({"operation": "crop", "image": image_sha256, "formats": formats})


def gate_fingerprint(step: str, shown: list[StoredOutput], choose: int | None) -> str:
    """A gate decision is about exactly these outputs: shown again, it may be reused (on resume)."""
    return fingerprint(
        {
            "operation": "approve",
            "step": step,
            "shown": [o.blob.sha256 if o.blob else o.text for o in shown],
            "choose": choose,
        }
    )


def is_deterministic(spec: ModelSpec, request: OperationRequest) -> bool:
    """Same request, same output: upscalers and the like, or any request with a fixed seed."""
    seed = request.inputs.get("seed")
    return spec.deterministic or (isinstance(seed, int) and seed >= 0)
