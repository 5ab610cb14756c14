"""``create_app``: the emulator as an ASGI application.

Auth is checked before routing (like WaveSpeed's gateway: a bad key never reaches a handler),
and the raw server ``send`` is kept in the scope so connection faults can reach the socket
(see ``emulator.breaks``). Unknown routes and malformed requests answer in WaveSpeed's envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from emulator import admin, api, files, gemini, huggingface, stability
from emulator.breaks import RAW_SEND_KEY
from emulator.config import EmulatorConfig
from emulator.paid import InlineAccount
from emulator.runtime import Runtime
from emulator.state import EmulatorState
from providers.catalogue import Catalogue, load_catalogue

UNAUTHORIZED = {"code": 401, "message": "Unauthorized"}


class EmulatorApp(FastAPI):
    """FastAPI plus two things that must happen before Starlette wraps the request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND_KEY] = send
            path: str = scope.get("path", "")
            if path == "/api/v3" or path.startswith("/api/v3/"):
                runtime: Runtime = self.state.runtime
                if not _authorized(scope, runtime.state.config.api_key):
                    await JSONResponse(UNAUTHORIZED, status_code=401)(scope, receive, send)
                    return
            if path.startswith(f"{stability.PREFIX}/"):
                runtime = self.state.runtime
                if not _authorized(scope, runtime.state.config.api_key):
                    body = {"id": "0" * 32, "name": "unauthorized", "errors": ["bad key"]}
                    await JSONResponse(body, status_code=401)(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def _authorized(scope: Scope, api_key: str) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return scheme.lower() == "bearer" and token.strip() == api_key
    return False


def create_app(config: EmulatorConfig | None = None, catalogue: Catalogue | None = None) -> FastAPI:
    """A fresh emulator (its own state) for ``config`` and ``catalogue`` (default: the shipped one)."""
    state = EmulatorState(config or EmulatorConfig())
    runtime = Runtime(state, catalogue or load_catalogue())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.ensure_running()
        try:
            yield
        finally:
            await runtime.stop()

    app = EmulatorApp(
        title="WaveSpeed emulator",
        description="Local stand-in for the WaveSpeed AI v3 REST API, with fault injection.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    app.state.emulator = state
    app.state.stability = stability.StabilityAccount(
        processing_seconds=state.config.processing_seconds
    )
    app.include_router(admin.router)
    app.include_router(files.router)
    app.state.huggingface = InlineAccount()
    app.state.gemini = InlineAccount()
    app.include_router(stability.router)  # these before api's catch-all routes
    app.include_router(huggingface.router)
    app.include_router(gemini.router)
    app.include_router(api.router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(
            {"code": exc.status_code, "message": message}, status_code=exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"code": 400, "message": str(exc.errors())}, status_code=400)

    return app
