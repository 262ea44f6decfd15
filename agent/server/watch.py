"""Stop work for a client that went away.

Streamed responses are cancelled by the ASGI server when the client disconnects (the stream's
`finally` cancels the generation). A non-streamed request has nobody to notice, so its
generation runs beside a watcher that polls the connection and cancels it."""
from __future__ import annotations

import asyncio

from fastapi import Request

POLL_SECONDS = 0.25


async def until_disconnected(request: Request, work) -> bool:
    """Runs `work` (a coroutine); returns False if the client left and the work was cancelled."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
            if done:
                task.result()
                return True
            if await request.is_disconnected():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return False
    finally:
        if not task.done():
            task.cancel()
