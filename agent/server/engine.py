"""The request queue between the async HTTP handlers and the (blocking) generation backend.

One worker thread owns the backend: the model's KV cache is a single piece of state, so
requests run one after another, which is also what makes prefix reuse work across the
requests of one conversation. When several requests wait and the backend can batch
(`complete_batch`), the worker serves them together. Each request has a cancel flag, checked
between tokens and, on the in-process runtime, between the steps of a long prefill
(prefill.py), so a client that disconnects stops its generation within one step, and a queued
request whose client left is dropped unrun.

Prefix reuse stays within a cache scope (`Params.cache_scope`: the request's API key and
`cache_salt`, state.cache_scope): when a request of another scope comes, the backend forgets
its cached prefix first, so no client reuses (or, from `cached_tokens` and latency, learns)
another's prompt. Requests without keys or salts share one scope, as on a one-user server.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from agent.server import prefill

# A batch's prefill is one call that cannot be cancelled: at most one prefill step of tokens.
BATCH_PROMPT_TOKENS = prefill.STEP


@dataclass
class Params:
    max_tokens: int
    stop: Sequence[int] = ()
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: bool = False
    constraint: Any = None  # a GrammarConstraint, on backends that take one
    cache_scope: Any = None  # whose cached prefix this request may reuse (not a batch key:
                             # a batch runs on a fresh cache and reuses nothing)

    def sampling_key(self) -> tuple:
        return (tuple(self.stop), self.temperature, self.top_p, self.seed, self.logprobs)

    def batch_key(self) -> tuple:
        # Requests batch together only when they sample the same way; a constrained one
        # runs alone (its grammar follows one row).
        return self.sampling_key() + (id(self.constraint) if self.constraint is not None
                                      else None,)


@dataclass
class Finished:
    """End of one request's token stream, with the backend's usage numbers."""
    usage: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class _Job:
    prompt: list[int]
    params: Params
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue
    cancelled: threading.Event = field(default_factory=threading.Event)

    def push(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down)
            self.cancelled.set()


class Handle:
    """One queued request. `cancel()` stops its generation at the next token; the stream
    still ends with a `Finished` carrying the usage so far."""

    def __init__(self, job: _Job):
        self._job = job
        self.finished: Finished | None = None

    def cancel(self) -> None:
        self._job.cancelled.set()

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.finished is not None:
            raise StopAsyncIteration
        item = await self._job.out.get()
        if isinstance(item, Finished):
            self.finished = item
        return item


class Engine:
    def __init__(self, backend, max_batch: int = 8):
        self.backend = backend
        self.max_batch = max_batch if hasattr(backend, "complete_batch") else 1
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.steps_prefill = prefill.can_prefill(backend)
        self.served = 0  # requests finished (for /health and tests)
        self.batches = 0  # backend calls that served more than one request
        self._cache_scope = None  # the scope whose prefix the backend's cache holds

    @property
    def queued(self) -> int:
        """Requests waiting for the worker (not counting the one it is serving)."""
        return self._jobs.qsize()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="agent-server-engine",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def submit(self, prompt: list[int], params: Params) -> "Handle":
        """Queues a request; iterate the handle for Generated items, then one Finished."""
        self.start()
        job = _Job(list(prompt), params, asyncio.get_running_loop(), asyncio.Queue())
        self._jobs.put(job)
        return Handle(job)

    # ---- worker thread ----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            group = [job]
            try:
                group += self._more_like(job)
                live = [j for j in group if not j.cancelled.is_set()]
                for j in group:
                    if j.cancelled.is_set():
                        j.push(Finished(error="cancelled"))
                if live:
                    self._run(live)
            except Exception as exc:  # never leave a request waiting on a dead worker
                for j in group:
                    j.push(Finished(error=f"engine failure: {type(exc).__name__}: {exc}"))
            self.served += len(group)

    def _more_like(self, first: _Job) -> list[_Job]:
        """Waiting jobs that can share a batch with `first`; others go back in order.
        A long prompt runs alone (in cancellable steps)."""
        budget = BATCH_PROMPT_TOKENS - len(first.prompt)
        if self.max_batch == 1 or budget < 0:
            return []
        key = first.params.batch_key()
        return self._take_waiting(self.max_batch - 1, budget,
                                  lambda job, taken: job.params.batch_key() == key)

    def _take_waiting(self, room: int, budget: int, fits) -> list[_Job]:
        """Up to `room` waiting jobs, with prompts of `budget` tokens in all, that
        `fits(job, taken so far)`; the others go back in order."""
        taken, keep = [], []
        while len(taken) < room:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                keep.append(job)
                break
            ok = len(job.prompt) <= budget and fits(job, taken)
            if ok:
                budget -= len(job.prompt)
            (taken if ok else keep).append(job)
        for job in keep:
            self._jobs.put(job)
        return taken

    def _run(self, jobs: list[_Job]) -> None:
        """Streams each generated token to its request; stops once every client has left."""
        stream = None
        reused = None
        # a lone request on the session cache: requests that come meanwhile are served
        # between its prefill steps and its tokens, in a batch on a cache of their own
        side = _Side(self) if len(jobs) == 1 and self.max_batch > 1 else None
        try:
            if len(jobs) == 1:
                self._claim_cache(jobs[0].params.cache_scope)
            if len(jobs) == 1 and self.steps_prefill:
                reused = prefill.prefill(self.backend.model, jobs[0].prompt, jobs[0].cancelled,
                                         side.serve if side is not None else None)
                if reused is None:
                    jobs[0].push(Finished(error="cancelled"))
                    return
            stream = self._tokens(jobs)
            for index, item in stream:
                if not jobs[index].cancelled.is_set():
                    jobs[index].push(item)
                elif all(j.cancelled.is_set() for j in jobs):
                    break
                if side is not None:
                    side.serve(0.0)
        except Exception as exc:  # a backend failure ends these requests, not the server
            for j in jobs:
                j.push(Finished(error=f"{type(exc).__name__}: {exc}"))
            return
        finally:
            if stream is not None:
                stream.close()
            if side is not None:
                side.finish()
        if len(jobs) == 1:
            usages = [dict(getattr(self.backend, "last_usage", None) or {})]
            if reused is not None and usages[0]:  # what was cached before the piecewise prefill
                read = usages[0].get("prompt_tokens", len(jobs[0].prompt))  # as the model read it
                usages[0].update(reused_tokens=reused, computed_tokens=read - reused)
        else:
            usages = getattr(self.backend, "last_batch_usage", None) or [{} for _ in jobs]
        for j, usage in zip(jobs, usages):
            j.push(Finished(usage=dict(usage)))

    def _waiting_batch(self) -> list[_Job]:
        """Waiting requests that can run as one batch beside a lone one: short prompts (one
        prefill step in all) that sample alike, each keeping its own grammar."""
        taken = self._take_waiting(self.max_batch, BATCH_PROMPT_TOKENS, lambda job, taken: (
            not taken or job.params.sampling_key() == taken[0].params.sampling_key()))
        for job in taken:
            if job.cancelled.is_set():  # its client left while it waited
                job.push(Finished(error="cancelled"))
                self.served += 1
        return [job for job in taken if not job.cancelled.is_set()]

    def _claim_cache(self, scope) -> None:
        """Hands the backend's prefix cache to `scope`, forgetting another scope's prefix.
        Free while the scope stays the same (one user); a backend without `forget_prefix`
        (a remote engine, with a cache of its own) is left as it is."""
        if scope != self._cache_scope:
            forget = getattr(self.backend, "forget_prefix", None)
            if forget is not None:
                forget()
            self._cache_scope = scope

    def _tokens(self, jobs: list[_Job], batch: bool = False):
        """(request index, Generated) from one backend call for all the jobs."""
        p = jobs[0].params
        sampling = dict(stop=list(p.stop), temperature=p.temperature, top_p=p.top_p,
                        seed=p.seed, logprobs=p.logprobs)
        if len(jobs) == 1 and not batch:
            if p.constraint is not None:
                sampling["constraint"] = p.constraint
            stream = self.backend.complete(jobs[0].prompt, max_tokens=p.max_tokens, **sampling)
        else:
            self.batches += len(jobs) > 1
            if any(j.params.constraint is not None for j in jobs):
                sampling["constraints"] = [j.params.constraint for j in jobs]
            stream = self.backend.complete_batch([j.prompt for j in jobs],
                                                 max_tokens=[j.params.max_tokens for j in jobs],
                                                 **sampling)
        try:
            for item in stream:
                yield item if len(jobs) > 1 or batch else (0, item)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # the runtime frees its cache; a remote engine its connection


class _Side:
    """Requests served beside a lone one that holds the session cache (a long prefill, then
    its tokens): batches of the waiting short requests, on a cache of their own, advanced
    for about as long as each of the lone request's steps took, so neither starves."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.jobs: list[_Job] = []
        self.stream = None

    def serve(self, seconds: float) -> None:
        """Advances the side requests for `seconds` (at least one token)."""
        deadline = time.perf_counter() + seconds
        while True:
            if self.stream is None:
                self.jobs = self.engine._waiting_batch()
                if not self.jobs:
                    return
                self.stream = self.engine._tokens(self.jobs, batch=True)
            try:
                index, item = next(self.stream)
            except StopIteration:
                self._done()
            except Exception as exc:  # a backend failure ends these requests, not the server
                self._done(f"{type(exc).__name__}: {exc}")
            else:
                if not self.jobs[index].cancelled.is_set():
                    self.jobs[index].push(item)
                elif all(j.cancelled.is_set() for j in self.jobs):
                    self.stream.close()
                    self._done()
            if time.perf_counter() >= deadline:
                return

    def finish(self) -> None:
        """Serves the side requests to their end (the lone request is done)."""
        while self.stream is not None:
            self.serve(0.0)

    def _done(self, error: str | None = None) -> None:
        usages = getattr(self.engine.backend, "last_batch_usage", None) or [{}] * len(self.jobs)
        for job, usage in zip(self.jobs, usages):
            job.push(Finished(error=error) if error else Finished(usage=dict(usage)))
        self.engine.served += len(self.jobs)
        self.stream, self.jobs = None, []
