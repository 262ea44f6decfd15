"""`serve --api-key KEY`: every endpoint but /health wants `Authorization: Bearer KEY`.

An ASGI middleware, outermost, so a client without the key is answered 401 before the server
reads its body. The comparison takes the same time whatever the key (secrets.compare_digest).
"""
from __future__ import annotations

import secrets

from agent.server.errors import ApiError, send_error

API_KEY_ENV = "GPT_OSS_AGENT_SERVER_API_KEY"
OPEN_PATHS = ("/health",)


class ApiKeyAuth:
    def __init__(self, app, api_key: str):
        self.app, self.expected = app, f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if secrets.compare_digest(given, self.expected):
            return await self.app(scope, receive, send)
        message = ("Incorrect API key provided." if given else
                   "Missing API key: send it as 'Authorization: Bearer KEY'.")
        return await send_error(send, ApiError(message, status=401, code="invalid_api_key"),
                                close=True)
