"""Keeps the repository's top-level folders from shadowing installed packages of the same name.

`kernels/`, `model/`, `tools/` and `prompts/` are the packages `agent.kernels`, `agent.model`,
`agent.tools` and `agent.prompts`. Whenever Python runs from the repository root (`python -m
pytest`, `python -m agent`, a script there) the root is on sys.path, so a plain `import kernels`
would find the folder instead of the distribution of that name (transformers 5 imports Hugging
Face's `kernels`). Two guards, one rule: a top-level import of one of these names skips every
sys.path entry where the name is one of our folders.

- `agent` installs a meta-path finder on import, so every later `import kernels` gets the
  installed distribution.
- Each folder's `__init__` calls `stand_aside()` when it is executed under a top-level name (an
  import that ran before `agent` was imported): it puts the installed distribution in its place.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from importlib.machinery import ModuleSpec, PathFinder

FOLDERS = ("kernels", "model", "tools", "prompts")


@lru_cache(maxsize=None)
def _our_folder(name: str) -> str | None:
    """Where `agent.<name>` lives: the top-level folder in a checkout installed editable."""
    spec = importlib.util.find_spec(f"agent.{name}")
    return spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else None


def _is_ours(entry: str, name: str) -> bool:
    """Whether sys.path entry `entry` holds our folder `name` (not a distribution of that name)."""
    ours = _our_folder(name)
    try:
        return ours is not None and os.path.samefile(
            os.path.join(os.path.abspath(entry or os.curdir), name), ours)
    except OSError:
        return False


def installed_spec(name: str) -> ModuleSpec | None:
    """The spec of the top-level package `name` found on sys.path without our folders."""
    return PathFinder.find_spec(name, [p for p in sys.path if not _is_ours(p, name)])


class _SkipOurFolders:
    """Meta-path finder: top-level `kernels`, `model`, `tools`, `prompts` never resolve to us."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if path is not None or name not in FOLDERS:
            return None
        # None when nothing is installed: the path finder then reaches our folder, whose
        # __init__ stands aside (raising in a finder would break importlib.util.find_spec).
        return installed_spec(name)

    @staticmethod
    def invalidate_caches():
        pass


def install() -> None:
    if not any(isinstance(f, _SkipOurFolders) for f in sys.meta_path):
        sys.meta_path.insert(0, _SkipOurFolders())


def stand_aside(name: str) -> None:
    """Called by our folder `name`'s __init__ when it runs as a top-level module: replace it
    in sys.modules with the installed distribution, or fail as if the name did not exist. The
    rest of that __init__ then runs on a module nobody holds (its imports are absolute)."""
    install()
    spec = installed_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {name!r} (the repository's {name}/ folder "
                                  f"is agent.{name})", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
