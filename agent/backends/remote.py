"""A gpt-oss served by another engine, as an agent backend over HTTP (httpx).

The agent keeps its own Harmony renderer, parser and effort routing: it sends the rendered
prompt as token ids and reads back generated token ids wherever the engine allows it.

    RemoteBackend("http://host:8000")            vLLM / SGLang / `python -m agent serve`:
                                                 POST /v1/completions, prompt = token ids
    RemoteBackend("llamacpp+http://host:8080")   llama.cpp server: POST /completion with tokens
    RemoteBackend("ollama+http://host:11434")    Ollama: POST /api/generate, raw Harmony text
    RemoteBackend("chat+http://host:8000")       any OpenAI chat-completions server: the
                                                 prompt is turned back into chat messages and
                                                 the answer into Harmony tokens

Where text goes instead of token ids (Ollama, chat), special-token strings inside contents are
broken with a zero-width space (harmony_chat.inert), so a tool result or page can never become
Harmony structure when the engine tokenizes it.

The turn's grammar (agent/harmony/grammar.py) goes with the request where the engine follows
one: to /v1/completions as vLLM's `structured_outputs.grammar` in llguidance's Lark (vLLM with
`--structured-outputs-config.backend guidance`, and `python -m agent serve`), to llama.cpp's
/completion as `grammar` in GBNF (the frame, the declared tools, their arguments' types). On every
API the tokens that come back are checked against the full grammar, so output that leaves it
is reported as the turn's error and an undeclared or malformed call is answered as one.

An API key (vLLM `--api-key`, hosted endpoints) comes from `api_key=` or the environment
variable GPT_OSS_AGENT_API_KEY. Connection errors, timeouts, 429 and 5xx are retried with
backoff. A raw-token stream that
breaks midway resumes from the tokens already received (they extend the prompt), so nothing
is generated twice and nothing is lost.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Iterator, Sequence

import httpx

from agent.backends.base import Generated, empty_usage
from agent.backends.harmony_chat import (chat_messages_from_prompt, harmony_tokens_from_chat,
                                         prompt_text)
from agent.harmony.tokenizer import CALL, MESSAGE, RETURN, START, get_encoding

log = logging.getLogger(__name__)
RETRYABLE = (httpx.TransportError,)  # connect/read/write errors, timeouts, protocol errors
APIS = ("completions", "llamacpp", "ollama", "chat")


class RemoteError(RuntimeError):
    """The engine refused the request (`status`: its HTTP status) or stayed unreachable
    after the retries."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _Retryable(Exception):
    pass


def split_url(url: str) -> tuple[str, str]:
    """'llamacpp+http://h:1/' -> ('llamacpp', 'http://h:1'); plain URLs speak completions."""
    api, sep, rest = url.partition("+")
    if sep and api in APIS:
        url = rest
    else:
        api = "completions"
    base = url.rstrip("/")
    return api, base[:-3] if base.endswith("/v1") else base


class RemoteBackend:
    takes_constraint = True     # sent where the engine follows grammars, checked everywhere

    def __init__(self, url: str, *, model: str | None = None, api: str | None = None,
                 timeout: float = 120.0, retries: int = 3, backoff: float = 0.5,
                 api_key: str | None = None, transport: httpx.BaseTransport | None = None):
        detected, self.base = split_url(url)
        self.api = api or detected
        if self.api not in APIS:
            raise ValueError(f"remote backend: unknown api {self.api!r} (one of {', '.join(APIS)})")
        self.model = model
        self.retries, self.backoff = retries, backoff
        api_key = api_key or os.environ.get("GPT_OSS_AGENT_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                 headers=headers, transport=transport)
        self.last_usage = empty_usage()
        self.sends_grammar = self.api in ("completions", "llamacpp")  # until one is refused

    def close(self) -> None:
        self.http.close()

    # ---- the Backend protocol ------------------------------------------------------------

    def complete(self, prompt: list[int], *, max_tokens: int, stop: Sequence[int] = (),
                 temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 logprobs: bool = False, constraint=None) -> Iterator[Generated]:
        prompt = list(prompt)
        self.last_usage = {**empty_usage(), "prompt_tokens": len(prompt)}
        grammar = None
        if constraint is not None and self.sends_grammar:
            grammar = constraint.gbnf if self.api == "llamacpp" else constraint.grammar
        sampling = dict(temperature=temperature, top_p=top_p, seed=seed, logprobs=logprobs,
                        grammar=grammar)
        if self.api == "chat":
            out = self._chat(prompt, max_tokens, stop, sampling)
        else:
            out = self._raw(prompt, max_tokens, list(stop), sampling)
        produced = 0
        for item in out:
            produced += 1
            self.last_usage["generated_tokens"] = produced
            if constraint is not None:
                constraint.advance(item.token)  # leaving the grammar sets constraint.error
            yield item

    def _raw(self, prompt, max_tokens, stop, sampling) -> Iterator[Generated]:
        """Token-id streaming with resume: after a broken stream, the tokens received so far
        join the prompt and the engine continues from there."""
        got: list[int] = []
        attempt = 0
        refused: RemoteError | None = None
        while True:
            try:
                for item in self._raw_once(prompt + got, max_tokens - len(got), stop, sampling):
                    if refused is not None:
                        # an engine without a Lark grammar backend (vLLM on xgrammar, a server
                        # over a backend that cannot constrain): from now on it gets no grammar
                        # and its output is only checked
                        log.warning("%s does not follow the turn grammar (%s); its output is "
                                    "checked instead", self.base, refused)
                        self.sends_grammar, refused = False, None
                    got.append(item.token)
                    yield item
                    if item.token in stop:
                        return
                return
            except RemoteError as exc:
                if sampling["grammar"] is None or got or exc.status != 400:
                    raise
                refused, sampling = exc, {**sampling, "grammar": None}  # was it the grammar?
                continue
            except _Retryable as exc:
                # the grammar describes a whole turn: a resumed stream is only checked
                sampling = {**sampling, "grammar": None} if got else sampling
                attempt += 1
                if attempt > self.retries:
                    raise RemoteError(f"{self.base}: {exc} (gave up after {self.retries} retries)")
                time.sleep(self.backoff * 2 ** (attempt - 1))
            if len(got) >= max_tokens:
                return

    def _raw_once(self, prompt, max_tokens, stop, sampling) -> Iterator[Generated]:
        if max_tokens <= 0:
            return
        if self.api == "completions":
            lines = self._post_stream("/v1/completions", self._completions_body(
                prompt, max_tokens, stop, sampling))
            reader = self._read_completions
        elif self.api == "llamacpp":
            lines = self._post_stream("/completion", self._llamacpp_body(
                prompt, max_tokens, stop, sampling))
            reader = self._read_llamacpp
        else:
            lines = self._post_stream("/api/generate", self._ollama_body(
                prompt, max_tokens, stop, sampling))
            reader = self._read_ollama
        tokens: list[int] = []
        finish = None
        for token, logprob, done in reader(lines):
            if token is not None:
                tokens.append(token)
                yield Generated(token, logprob if sampling["logprobs"] else None)
            if done is not None:
                finish = done
        # Engines report the stop token out of band (vLLM's stop_reason, llama.cpp's
        # stop_type); the agent's parser needs it in the stream, so put it back.
        if finish is not None and finish != "length" and (not tokens or tokens[-1] not in stop):
            token = finish if isinstance(finish, int) else implied_stop(tokens)
            if token in stop:
                yield Generated(token, 0.0 if sampling["logprobs"] else None)

    # ---- HTTP with retries ---------------------------------------------------------------

    def _post_stream(self, path: str, body: dict) -> Iterator[str]:
        """POST and yield the response's lines; connection trouble becomes _Retryable."""
        try:
            with self.http.stream("POST", self.base + path, json=body) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    response.read()
                    raise _Retryable(f"HTTP {response.status_code}: {_error_text(response)}")
                if response.status_code >= 400:
                    response.read()
                    raise RemoteError(f"{self.base}{path}: HTTP {response.status_code}: "
                                      f"{_error_text(response)}", status=response.status_code)
                yield from response.iter_lines()
        except RETRYABLE as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc

    def _post_json(self, path: str, body: dict) -> dict:
        for attempt in range(self.retries + 1):
            try:
                return json.loads("".join(self._post_stream(path, body)))
            except _Retryable as exc:
                if attempt == self.retries:
                    raise RemoteError(f"{self.base}: {exc} (gave up after {self.retries} retries)")
                time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def model_id(self) -> str:
        if self.model is None:
            for attempt in range(self.retries + 1):
                try:
                    response = self.http.get(self.base + "/v1/models")
                    response.raise_for_status()
                    self.model = response.json()["data"][0]["id"]
                    break
                except RETRYABLE as exc:
                    if attempt == self.retries:
                        raise RemoteError(f"{self.base}/v1/models: {exc}") from exc
                    time.sleep(self.backoff * 2 ** attempt)
                except (httpx.HTTPStatusError, KeyError, IndexError, ValueError) as exc:
                    raise RemoteError(f"{self.base}/v1/models: cannot read the model id "
                                      f"({exc}); pass model=...") from exc
        return self.model

    # ---- vLLM / SGLang / agent server: /v1/completions -------------------------------------

    def _completions_body(self, prompt, max_tokens, stop, s) -> dict:
        body = {"model": self.model_id(), "prompt": prompt, "max_tokens": max_tokens,
                "temperature": s["temperature"], "top_p": s["top_p"], "stream": True,
                "stream_options": {"include_usage": True}, "stop_token_ids": stop,
                "skip_special_tokens": False, "return_token_ids": True,
                # vLLM: logprob entries name their token as "token_id:N" -- ids survive even
                # where return_token_ids is unknown.
                "logprobs": 0, "return_tokens_as_token_ids": True}
        if s["seed"] is not None:
            body["seed"] = s["seed"]
        if s.get("grammar") is not None:
            body["structured_outputs"] = {"grammar": s["grammar"]}
        return body

    def _read_completions(self, lines):
        for data in _sse_data(lines):
            if data.get("usage"):
                self._note_usage(data["usage"])
            for choice in data.get("choices") or ():
                tokens, logprobs = _choice_tokens(choice)
                for token, logprob in zip(tokens, logprobs):
                    yield token, logprob, None
                if choice.get("finish_reason"):
                    reason = choice.get("stop_reason")
                    yield None, None, (reason if isinstance(reason, int) else
                                       "length" if choice["finish_reason"] == "length" else "stop")

    def _note_usage(self, usage: dict) -> None:
        prompt = int(usage.get("prompt_tokens", self.last_usage["prompt_tokens"]))
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        self.last_usage.update(prompt_tokens=prompt, reused_tokens=cached,
                               computed_tokens=prompt - cached)

    # ---- llama.cpp server: /completion -------------------------------------------------------

    def _llamacpp_body(self, prompt, max_tokens, stop, s) -> dict:
        body = {"prompt": prompt, "n_predict": max_tokens, "temperature": s["temperature"],
                "top_p": s["top_p"], "stream": True, "return_tokens": True,
                "cache_prompt": True, "n_probs": 1 if s["logprobs"] else 0}
        if s["seed"] is not None:
            body["seed"] = s["seed"]
        if s.get("grammar") is not None:
            body["grammar"] = s["grammar"]
        return body

    def _read_llamacpp(self, lines):
        for data in _sse_data(lines):
            tokens = data.get("tokens") or []
            if not tokens and data.get("content"):
                tokens = _encode(data["content"])
            for token in tokens:
                yield int(token), None, None
            if data.get("stop"):
                timings = data.get("timings") or {}
                if "prompt_n" in timings:
                    computed = int(timings["prompt_n"])
                    self.last_usage.update(computed_tokens=computed, reused_tokens=max(
                        0, self.last_usage["prompt_tokens"] - computed))
                yield None, None, "length" if data.get("stop_type") == "limit" else "stop"

    # ---- Ollama: /api/generate in raw mode -------------------------------------------------

    def _ollama_body(self, prompt, max_tokens, stop, s) -> dict:
        enc = get_encoding()
        options = {"num_predict": max_tokens, "temperature": s["temperature"], "top_p": s["top_p"],
                   "stop": [enc.decode([t]) for t in stop]}
        if s["seed"] is not None:
            options["seed"] = s["seed"]
        # Ollama tokenizes the text with special tokens parsed: contents are made inert
        return {"model": self.model or "gpt-oss:20b", "prompt": prompt_text(prompt), "raw": True,
                "stream": True, "options": options}

    def _read_ollama(self, lines):
        for line in lines:
            if not line.strip():
                continue
            data = json.loads(line)
            if data.get("error"):
                raise RemoteError(f"{self.base}/api/generate: {data['error']}")
            for token in _encode(data.get("response", "")):
                yield token, None, None
            if data.get("done"):
                yield None, None, "length" if data.get("done_reason") == "length" else "stop"

    # ---- any chat-completions server ---------------------------------------------------------

    def _chat(self, prompt, max_tokens, stop, s) -> Iterator[Generated]:
        effort, messages = chat_messages_from_prompt(prompt)
        body = {"model": self.model_id(), "messages": messages, "max_tokens": max_tokens,
                "temperature": s["temperature"], "top_p": s["top_p"], "reasoning_effort": effort}
        if s["seed"] is not None:
            body["seed"] = s["seed"]
        data = self._post_json("/v1/chat/completions", body)
        if data.get("usage"):
            self._note_usage(data["usage"])
        choice = (data.get("choices") or [{}])[0]
        tokens = harmony_tokens_from_chat(choice.get("message") or {}, choice.get("finish_reason"))
        for token in tokens[:max_tokens]:
            yield Generated(token, 0.0 if s["logprobs"] else None)
            if token in stop:
                return


# ---- helpers -------------------------------------------------------------------------------

def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", body)
        return error.get("message", str(error)) if isinstance(error, dict) else str(error)
    except ValueError:
        return response.text[:200]


def _sse_data(lines) -> Iterator[dict]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        data = json.loads(payload)
        if isinstance(data, dict) and data.get("error"):
            error = data["error"]
            raise RemoteError(error.get("message", str(error)) if isinstance(error, dict) else str(error))
        yield data


def _encode(text: str) -> list[int]:
    return list(get_encoding().encode(text, allowed_special="all"))


def _choice_tokens(choice: dict) -> tuple[list[int], list[float | None]]:
    """Token ids of one streamed choice: `token_ids`, else "token_id:N" logprob entries,
    else the text re-encoded (special tokens included)."""
    lp = choice.get("logprobs") or {}
    logprobs = list(lp.get("token_logprobs") or [])
    if choice.get("token_ids") is not None:
        tokens = [int(t) for t in choice["token_ids"]]
    elif lp.get("tokens") and all(str(t).startswith("token_id:") for t in lp["tokens"]):
        tokens = [int(str(t)[9:]) for t in lp["tokens"]]
    else:
        tokens, logprobs = _encode(choice.get("text") or ""), []
    logprobs += [None] * (len(tokens) - len(logprobs))
    return tokens, logprobs


def implied_stop(tokens: Sequence[int]) -> int:
    """Which stop token ended a turn the engine did not name: a message addressed to a
    recipient (a tool call) ends with <|call|>, anything else with <|return|>."""
    start = max((i for i, t in enumerate(tokens) if t == START), default=-1) + 1
    header = tokens[start:]
    if MESSAGE in header:
        header = header[:header.index(MESSAGE)]
    text = get_encoding().decode([t for t in header if t < 199998])
    return CALL if " to=" in f" {text}" or text.startswith("to=") else RETURN
