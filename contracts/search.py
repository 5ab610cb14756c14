"""Custom search attributes: how operators find runs in the Temporal UI and the visibility API.

e.g. ``StudioUser="u42" AND StudioOperation="upscale" AND StudioStatus="failed"``;
``StudioStatus="awaiting_approval"`` lists the pipelines waiting on a person at a gate. They are
registered automatically on the embedded dev server (``studio.stack``); on a production cluster run
``temporal operator search-attribute create`` once per name (see docs/operations.md). Never put
secrets or prompts here: search attributes are stored unencrypted.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

STUDIO_USER = SearchAttributeKey.for_keyword("StudioUser")
STUDIO_OPERATION = SearchAttributeKey.for_keyword("StudioOperation")
STUDIO_MODEL = SearchAttributeKey.for_keyword("StudioModel")
STUDIO_PIPELINE = SearchAttributeKey.for_keyword("StudioPipeline")
STUDIO_STATUS = SearchAttributeKey.for_keyword("StudioStatus")

ALL_KEYS = (STUDIO_USER, STUDIO_OPERATION, STUDIO_MODEL, STUDIO_PIPELINE, STUDIO_STATUS)


def dev_server_flags() -> list[str]:
    """``--search-attribute`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for key in ALL_KEYS:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
