"""One request's run through the engine, decoded into deltas, with OpenAI usage numbers."""
from __future__ import annotations

from typing import AsyncIterator

from agent.server.decode import Delta, OutputDecoder
from agent.server.engine import Engine, Finished, Params
from agent.server.errors import ApiError


class Generation:
    def __init__(self, engine: Engine, prompt: list[int], params: Params,
                 decoder: OutputDecoder):
        self.engine, self.prompt, self.params, self.decoder = engine, prompt, params, decoder
        self.backend_usage: dict = {}
        self.error: str | None = None
        self.logprobs: list[tuple[int, float | None]] = []  # (token, logprob) of visible text

    async def deltas(self) -> AsyncIterator[Delta]:
        """Deltas as tokens arrive. Closing this iterator early (client gone) cancels."""
        handle = self.engine.submit(self.prompt, self.params)
        try:
            async for item in handle:
                if isinstance(item, Finished):
                    self.backend_usage, self.error = item.usage, item.error
                    break
                deltas = self.decoder.feed(item.token)
                if self.params.logprobs and any(d.kind == "content" for d in deltas):
                    self.logprobs.append((item.token, item.logprob))
                for delta in deltas:
                    yield delta
                if self.decoder.done:
                    handle.cancel()  # stop string or stop token: drain to Finished
            if self.error and self.error != "cancelled":
                raise ApiError(f"generation failed: {self.error}", status=500, type="server_error")
            for delta in self.decoder.finish():
                yield delta
        finally:
            handle.cancel()

    async def run(self) -> None:
        async for _ in self.deltas():
            pass

    def usage(self) -> dict:
        """Chat-completions usage; `cached_tokens` is the prefix the runtime reused. Prompt
        tokens as the model read them (a closed vocabulary spells some in several)."""
        prompt = int(self.backend_usage.get("prompt_tokens") or len(self.prompt))
        completion = self.decoder.generated
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": int(self.backend_usage.get("reused_tokens", 0))},
            "completion_tokens_details": {"reasoning_tokens": self.decoder.reasoning_tokens},
        }

    def responses_usage(self) -> dict:
        u = self.usage()
        return {
            "input_tokens": u["prompt_tokens"],
            "input_tokens_details": u["prompt_tokens_details"],
            "output_tokens": u["completion_tokens"],
            "output_tokens_details": u["completion_tokens_details"],
            "total_tokens": u["total_tokens"],
        }
