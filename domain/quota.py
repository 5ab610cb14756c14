"""Which plan counter an operation draws on: billing policy, kept out of the model catalogue.

The catalogue says what a model does; how that is counted against a plan (``ledger/plans.yaml``
limits these categories) is the business's rule. Pre-flight reserves against the category named
here and settlement moves the same counter.
"""

from __future__ import annotations

from enum import StrEnum

from providers.catalogue import Operation

__all__ = ["QUOTA_CATEGORY", "QuotaCategory", "quota_category"]


class QuotaCategory(StrEnum):
    """The plan counter an operation consumes; pre-flight checks and settlement move the same one."""

    IMAGES = "images"
    EDITS = "edits"
    FACE_SWAPS = "face_swaps"
    MODELS_3D = "models_3d"
    TEXT = "text"


QUOTA_CATEGORY: dict[Operation, QuotaCategory] = {
    Operation.TEXT_TO_IMAGE: QuotaCategory.IMAGES,
    Operation.CHARACTER: QuotaCategory.IMAGES,
    Operation.EDIT: QuotaCategory.EDITS,
    Operation.UPSCALE: QuotaCategory.EDITS,
    Operation.TRANSLATE: QuotaCategory.EDITS,
    Operation.ERASE: QuotaCategory.EDITS,
    Operation.EXPAND: QuotaCategory.EDITS,
    Operation.BACKGROUND: QuotaCategory.EDITS,
    Operation.REMOVE_TEXT: QuotaCategory.EDITS,
    Operation.INPAINT: QuotaCategory.EDITS,
    Operation.SEARCH_REPLACE: QuotaCategory.EDITS,
    Operation.SEARCH_RECOLOR: QuotaCategory.EDITS,
    Operation.REMOVE_BACKGROUND: QuotaCategory.EDITS,
    Operation.RELIGHT: QuotaCategory.EDITS,
    Operation.SKETCH: QuotaCategory.IMAGES,
    Operation.STRUCTURE: QuotaCategory.IMAGES,
    Operation.STYLE: QuotaCategory.IMAGES,
    Operation.STYLE_TRANSFER: QuotaCategory.IMAGES,
    Operation.FACE_SWAP: QuotaCategory.FACE_SWAPS,
    Operation.IMAGE_TO_3D: QuotaCategory.MODELS_3D,
    Operation.TEXT_TO_3D: QuotaCategory.MODELS_3D,
    Operation.CAPTION: QuotaCategory.TEXT,
    Operation.OPTIMIZE_PROMPT: QuotaCategory.TEXT,
}


def quota_category(operation: Operation) -> QuotaCategory:
    """The plan counter one run of ``operation`` draws on."""
    return QUOTA_CATEGORY[operation]
