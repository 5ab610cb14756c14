"""The caller's account: what is left of their plan (``GET /v1/usage``) and file uploads
(``POST /v1/uploads``: multipart, so a 20 MB image travels as 20 MB, not 27 MB of base64)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, UploadFile

from contracts.operation import BlobRef
from studio.http.context import Context, User
from studio.http.schemas import ErrorBody

router = APIRouter()


@router.get("/v1/usage", tags=["account"], operation_id="get_usage")
async def usage(ctx: Context, user: User) -> dict[str, Any]:
    """Your plan, billing period, money and units used / reserved / limit per quota category (the
    seed's ``usage_info``), so a frontend can show what is left before anyone clicks."""
    from ledger.service import open_ledger

    settings = ctx.settings

    def read() -> dict[str, Any]:
        ledger = open_ledger(settings.ledger_url, auto_migrate=settings.auto_migrate)
        return ledger.usage(user).to_dict()

    return await asyncio.to_thread(read)


@router.post(
    "/v1/uploads",
    tags=["files"],
    status_code=201,
    operation_id="upload_file",
    responses={
        413: {"model": ErrorBody, "description": "Larger than STUDIO_MAX_INPUT_BYTES"},
        422: {"model": ErrorBody, "description": "Not an image we accept"},
    },
)
async def upload(
    ctx: Context,
    user: User,
    file: Annotated[UploadFile, File(description="An image (PNG, JPEG, WebP…).")],
) -> dict[str, Any]:
    """Store an image (verified, content-addressed) as yours; use ``ref`` (``blob:<sha256>``) as
    an image in any operation or pipeline."""
    limit = ctx.settings.max_input_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"the file is larger than {limit} bytes")
    blob: BlobRef = await ctx.studio.upload(data, user_id=user)
    return {"ref": blob.location, "blob": blob.model_dump(mode="json")}
