"""Where generation happens: the in-process runtime (local.py), another engine over HTTP
(remote.py), or recorded completions (scripted.py). `open_backend` picks one for a model."""
from __future__ import annotations

import os
from typing import Any, Callable


def is_recorded_script(model: Any) -> bool:
    """A `.json` file of recorded completions stands in for a model (tests, demos, replays)."""
    return isinstance(model, (str, os.PathLike)) and str(model).endswith(".json") \
        and os.path.isfile(model)


def open_backend(model: Any = None, *, device: str = "cpu",
                 progress: Callable[[float, str], None] | None = None):
    """A backend object as it is; a recorded script; else a checkpoint (None: the embedded
    model) loaded in process."""
    if callable(getattr(model, "complete", None)):
        return model
    if is_recorded_script(model):
        from agent.backends.scripted import ScriptedBackend
        return ScriptedBackend.from_file(model)
    from agent.backends.local import LocalBackend
    return LocalBackend.load(model, device=device, progress=progress)
