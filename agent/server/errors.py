"""OpenAI-style error bodies: every client mistake becomes a 4xx with one clear line.

The official clients read `{"error": {"message", "type", "param", "code"}}`; anything that
escapes as a bare 500 (or a stream that never ends) breaks them, so the app funnels all
failures through `ApiError` and the handlers installed by `install_error_handlers`.
"""
from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A request the server refuses, with the HTTP status and OpenAI's error fields."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None, type: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.status, self.param, self.code, self.type = message, status, param, code, type

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


async def send_error(send, err: ApiError, *, close: bool = False) -> None:
    """The error answered straight over ASGI (middleware that runs before the app)."""
    body = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the client may still be sending: do not read the rest of its request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def sse_error(err: ApiError) -> bytes:
    """The error as one SSE event: a stream that already started cannot change its status."""
    return f"data: {json.dumps(err.body())}\n\n".encode()


_BRANCHES = {"str", "int", "float", "bool", "dict", "list", "none", "message", "function_call",
             "function_call_output", "reasoning", "unsupported"}


def _param(loc) -> str | None:
    """pydantic's error location without union-branch names ('str', 'list[int]', tags)."""
    parts = [str(p) for p in loc if p != "body" and not (
        isinstance(p, str) and ("[" in p or p in _BRANCHES or p[:1].isupper()))]
    return ".".join(parts) or None


def _describe_validation(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return ApiError("Invalid JSON in request body: cannot parse it", code="invalid_json")
    # Of a union's failed branches, the deepest location is the one the client meant.
    first = max(errors, key=lambda e: len(e.get("loc", ())), default={})
    param = _param(first.get("loc", ()))
    msg = first.get("msg", "invalid request").removeprefix("Value error, ")
    return ApiError(f"Invalid value for '{param}': {msg}" if param else f"Invalid request: {msg}",
                    param=param, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return error_response(_describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(ApiError(str(exc.detail), status=exc.status_code, type=kind))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception):
        # Last resort: still an OpenAI-shaped body, so clients report the cause.
        return error_response(ApiError(f"{type(exc).__name__}: {exc}", status=500,
                                       type="server_error"))
