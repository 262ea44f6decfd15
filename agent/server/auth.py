"""`serve --api-key KEY[,KEY...]`: every endpoint but /health wants `Authorization: Bearer KEY`.

An ASGI middleware, outermost, so a client without the key is answered 401 before the server
reads its body. The comparison takes the same time whatever the key (secrets.compare_digest,
against every key). Several keys (comma-separated) are several tenants: the key a request
came with is put in its scope (API_KEY_SCOPE, the key's index), and a prompt prefix cached
for one key is never reused for another (engine.py, state.cache_scope).
"""
from __future__ import annotations

import secrets
from typing import Sequence

from agent.server.errors import ApiError, send_error

API_KEY_ENV = "GPT_OSS_AGENT_SERVER_API_KEY"
API_KEY_SCOPE = "agent.api_key"  # ASGI scope entry: the index of the key the request sent
OPEN_PATHS = ("/health",)


def parse_keys(api_key: str | Sequence[str]) -> list[str]:
    """'KEY' or 'KEY1,KEY2' (or a list) -> the keys, blanks dropped."""
    keys = api_key.split(",") if isinstance(api_key, str) else list(api_key)
    return [key.strip() for key in keys if key.strip()]


class ApiKeyAuth:
    def __init__(self, app, api_key: str | Sequence[str]):
        keys = parse_keys(api_key)
        if not keys:
            raise ValueError("--api-key holds no key")
        self.app, self.expected = app, [f"Bearer {key}".encode() for key in keys]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        matched = None
        for index, expected in enumerate(self.expected):  # all compared: no early exit
            if secrets.compare_digest(given, expected) and matched is None:
                matched = index
        if matched is not None:
            return await self.app({**scope, API_KEY_SCOPE: matched}, receive, send)
        message = ("Incorrect API key provided." if given else
                   "Missing API key: send it as 'Authorization: Bearer KEY'.")
        return await send_error(send, ApiError(message, status=401, code="invalid_api_key"),
                                close=True)
