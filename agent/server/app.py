"""The OpenAI-compatible FastAPI app over any generation backend.

    app = create_app(LocalBackend.load(None), model_name="gpt-oss-nano")
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints: GET /v1/models, POST /v1/chat/completions, POST /v1/responses,
POST /v1/completions (raw Harmony token ids), GET /health. Before the endpoints, outermost
first: the API key check (auth.py), the body's size and time limits (limits.py), SSE
keep-alive comments (sse.py); `serve` adds the header deadline (limits.timed_h11).
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from agent.server import chat, completions, responses
from agent.server.auth import ApiKeyAuth
from agent.server.engine import Engine
from agent.server.errors import ApiError, install_error_handlers
from agent.server.limits import BODY_SECONDS, MAX_BODY_BYTES, BodyLimit
from agent.server.sse import KEEP_ALIVE_SECONDS, KeepAlive
from agent.server.state import ServerState


def context_of(backend, default: int = 8192) -> int:
    """The backend's context length, when its model says (config.max_position_embeddings)."""
    model = getattr(backend, "model", None)
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None)
    if value is None and isinstance(config, dict):
        value = config.get("max_position_embeddings")
    return int(value) if value else default


def default_builtin_tools(kinds):
    from agent.tools.toolbox import Toolbox
    return Toolbox(sorted(kinds))


def create_app(backend, model_name: str = "gpt-oss", *, max_context: int | None = None,
               max_batch: int = 8, api_key: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, body_seconds: float = BODY_SECONDS,
               keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
               builtin_tools=None, mcp_servers=None) -> FastAPI:
    """`api_key`: Bearer key every endpoint but /health wants; `max_body_bytes` /
    `body_seconds`: the largest request body and the time it may take to arrive (413 / 408);
    `keep_alive_seconds`: SSE comment interval on quiet streams (0: none);
    `builtin_tools(kinds)`: a Toolbox of the built-ins ("browser", "python") a /v1/responses
    request asks for (default: the project's browser and sandboxed python); `mcp_servers`:
    label -> connected MCPServer, offered to /v1/responses as `{"type": "mcp"}` tools (the
    caller closes them)."""
    engine = Engine(backend, max_batch=max_batch)
    state = ServerState(engine=engine, model_name=model_name,
                        builtin_tools=builtin_tools or default_builtin_tools,
                        mcp_servers=dict(mcp_servers or {}),
                        max_context=max_context or context_of(backend))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="gpt-oss agent server", lifespan=lifespan)
    app.state.server = state
    install_error_handlers(app)
    # Outermost last: the key is checked before any body is read.
    app.add_middleware(KeepAlive, seconds=keep_alive_seconds)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, seconds=body_seconds)
    if api_key:
        app.add_middleware(ApiKeyAuth, api_key=api_key)
    for module in (chat, responses, completions):
        app.include_router(module.router)

    def model_card() -> dict:
        return {"id": state.model_name, "object": "model", "created": state.created,
                "owned_by": "gpt-oss-agent", "max_model_len": state.max_context}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str):
        state.check_model(name)
        return model_card()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": state.model_name, "queued": engine.queued,
                "served": engine.served, "batches": engine.batches}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                   include_in_schema=False)
    async def unknown(path: str):
        raise ApiError(f"Unknown endpoint /{path}", status=404, type="not_found_error")

    return app
