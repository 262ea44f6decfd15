"""The in-process runtime as a backend: `agent.model.load(...)` -> GptOss.generate."""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

from agent.backends.base import Generated, empty_usage

# Names a user may type for the real checkpoints (`python -m agent download NAME` fetches them).
KNOWN_NAMES = ("gpt-oss-20b", "gpt-oss-120b")


class ModelNotFound(FileNotFoundError):
    pass


def resolve_model_path(model: str | os.PathLike | None) -> Path:
    """None -> the embedded nano model; an existing path -> itself; a name (`gpt-oss-20b`) or
    Hugging Face repo id (`openai/gpt-oss-20b`) -> its snapshot in the Hugging Face cache,
    else the folder older versions of `python -m agent download` filled. Anything else is a
    clear error, never a hub download."""
    if model is None:
        from agent.model import nano
        path = Path(nano.path())
        if not any(path.glob("*.safetensors")):
            raise ModelNotFound(f"the embedded model's weights are missing in {path}; "
                                "pass --model with a checkpoint folder")
        return path
    path = Path(model).expanduser()
    if path.exists():
        return path
    from agent.model.download import find_checkpoint, hub_cache, repo_id
    found = find_checkpoint(str(model))
    if found is not None:
        return found
    name = str(model).split("/")[-1]
    hint = f"; run `python -m agent download {name}` first" if name in KNOWN_NAMES else ""
    where = f" and not in the Hugging Face cache {hub_cache()}" if repo_id(str(model)) else ""
    raise ModelNotFound(f"model {str(model)!r}: no such checkpoint folder{where}{hint}")


class LocalBackend:
    """Generation on a loaded `GptOss`; the runtime keeps its own prefix cache. It takes a
    grammar constraint (agent/harmony/grammar.py) for each completion."""

    takes_constraint = True

    def __init__(self, model):
        self.model = model
        self.last_usage = empty_usage()

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, *, device: str = "cpu",
             progress: Callable[[float, str], None] | None = None) -> "LocalBackend":
        from agent.harmony.grammar import warm_up
        from agent.model import load
        path = resolve_model_path(model)
        warm_up()  # the grammar's tokenizer builds while the weights load
        kwargs = {"device": device}
        if progress is not None and "progress" in inspect.signature(load).parameters:
            kwargs["progress"] = progress
        return cls(load(str(path), **kwargs))

    @property
    def sampling_defaults(self) -> dict:
        """The checkpoint's recommended temperature / top_p (its generation_config.json)."""
        return dict(getattr(self.model, "sampling_defaults", None) or {})

    def forget_prefix(self) -> None:
        """The next prompt reuses nothing cached (the server's cache scopes). The buffers
        stay: dropping the cached tokens is enough, and costs nothing."""
        cache = getattr(self.model, "cache", None)
        if cache is not None:
            cache.truncate(0, 0)

    def complete(self, prompt: list[int], *, max_tokens: int, stop: Sequence[int] = (),
                 temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 logprobs: bool = False, constraint=None) -> Iterator[Generated]:
        """`constraint` (mask/advance/relax, a GrammarConstraint) restricts each token."""
        self.last_usage = empty_usage()
        stream = self.model.generate(list(prompt), max_tokens=max_tokens, stop_tokens=list(stop),
                                     temperature=temperature, top_p=top_p, seed=seed,
                                     logprobs=logprobs, constraint=constraint)
        usage = None
        try:
            for item in stream:
                # this call's counts: a batch the server runs in between replaces the model's
                usage = usage or getattr(self.model, "last_usage", None)
                yield Generated(int(item.token), getattr(item, "logprob", None))
        finally:
            self.last_usage = dict(usage or getattr(self.model, "last_usage", None)
                                   or self.last_usage)
