"""Downloads of stored files: for their owners (bearer token + user), or anyone holding a signed,
unexpired link (``?expires=&sig=``, as handed out in ``download_urls``) for an ``<img src>``."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from blobs.store import BlobNotFoundError
from contracts.operation import BlobRef
from studio.http.context import ApiContext, Context, caller
from studio.http.schemas import ErrorBody
from studio.metrics import DOWNLOADS

router = APIRouter(tags=["files"])


@router.get(
    "/v1/blobs/{sha256}",
    operation_id="download_blob",
    summary="Download a stored file: yours, or through a signed link",
    responses={
        200: {"content": {"application/octet-stream": {}}},
        403: {"model": ErrorBody, "description": "Signed link expired or altered"},
        404: {"model": ErrorBody},
    },
)
async def download(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    ctx: Context,
    request: Request,
    expires: Annotated[int | None, Query(description="Signed links: expiry, unix time")] = None,
    sig: Annotated[str | None, Query(max_length=128, description="Signed links: HMAC")] = None,
    authorization: Annotated[str | None, Header()] = None,
    x_studio_user: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The file's bytes; 404 for a file that is not yours (hashes reveal nothing)."""
    if expires is not None or sig is not None:
        if expires is None or sig is None or not ctx.studio.signer.valid(sha256, expires, sig):
            raise HTTPException(403, "this download link has expired or is not valid")
        cache = f"private, max-age={max(0, expires - int(time.time()))}"
    else:
        presented = (authorization or "").removeprefix("Bearer ").strip()
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=presented)
        user = caller(ctx, request, bearer, x_studio_user)
        if not await asyncio.to_thread(ctx.studio.owners().owns, user, sha256):
            raise HTTPException(404, "no such file")
        cache = "private, no-store"
    ref = await _stored(ctx, sha256)
    DOWNLOADS.labels("signed" if sig is not None else "owner").inc()
    chunks = await asyncio.to_thread(ctx.studio.blobs.iter_bytes, ref)
    return StreamingResponse(
        chunks,
        media_type=ref.media_type.split(";")[0],
        headers={
            "Content-Length": str(ref.size),
            "Content-Disposition": f'inline; filename="{sha256[:16]}.{ref.format or "bin"}"',
            "Cache-Control": cache,
        },
    )


async def _stored(ctx: ApiContext, sha256: str) -> BlobRef:
    try:
        return await asyncio.to_thread(ctx.studio.blobs.get, sha256)
    except BlobNotFoundError:
        raise HTTPException(404, "no such file") from None


def download_urls(ctx: ApiContext, blobs: list[BlobRef]) -> list[str]:
    """Signed, expiring URLs for ``blobs`` (S3 presigned, or signed links to this API)."""
    return [ctx.studio.download_url(b) for b in blobs]
