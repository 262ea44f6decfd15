"""A cgroup v2 memory controller around each sandbox, where the host delegates one.

The kernel charges a cgroup for everything its processes cost, kernel memory included (socket
buffers, inodes and dentries, page tables), caps it (memory.max) and kills the whole group at
the cap (memory.oom.group): what the watchdog cannot see from /proc is held too. It needs a
cgroup v2 folder with `memory` in its cgroup.subtree_control that this process may write:
the one named by GPT_OSS_AGENT_PYTHON_CGROUP, or else this process's own cgroup or its parent
(as systemd delegates a user's slice). A cgroup with processes in it cannot enable controllers
for its children (cgroup v2's "no internal processes" rule), so the host is not moved anywhere:
where no such folder exists (cgroup v1 hosts, containers without delegation), there is no
cgroup, and the rlimits, tmpfs inode limits and watchdog stand alone.
"""
from __future__ import annotations

import errno
import os
import secrets
import time
from pathlib import Path

ENV = "GPT_OSS_AGENT_PYTHON_CGROUP"
PREFIX = "agent-python-"


def _cgroup2_mount() -> Path | None:
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[fields.index("-") + 1] == "cgroup2":
                    return Path(fields[4])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _own_cgroup(mount: Path) -> Path | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return mount / line[3:].strip().lstrip("/")
    except OSError:
        pass
    return None


def usable(folder: Path) -> bool:
    """Children of `folder` get a memory controller, and this process may make and join them."""
    try:
        controllers = (folder / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False
    return ("memory" in controllers and os.access(folder, os.W_OK | os.X_OK)
            and os.access(folder / "cgroup.procs", os.W_OK))


def find_parent() -> Path | None:
    """The folder to make sandbox cgroups in, or None."""
    if os.environ.get(ENV):
        folder = Path(os.environ[ENV])
        return folder if usable(folder) else None
    mount = _cgroup2_mount()
    own = _own_cgroup(mount) if mount else None
    if own is None:
        return None
    for folder in (own, own.parent):
        if folder.is_relative_to(mount) and usable(folder):
            return folder
    return None


def create(parent: Path, memory_bytes: int) -> Path | None:
    """A new cgroup under `parent` capped at `memory_bytes` (no swap), killed as a whole at the
    cap; None where the kernel refuses any of it."""
    path = parent / f"{PREFIX}{secrets.token_hex(6)}"
    try:
        path.mkdir()
        (path / "memory.max").write_text(str(memory_bytes))
        (path / "memory.oom.group").write_text("1")
        if (path / "memory.swap.max").exists():  # absent without swap accounting
            (path / "memory.swap.max").write_text("0")
    except OSError:
        remove(path)
        return None
    return path


def oom_kills(path: Path) -> int:
    """How many times the kernel killed in this cgroup for memory."""
    try:
        for line in (path / "memory.events").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def remove(path: Path, wait: float = 2.0) -> None:
    """Kills what is left in the cgroup (cgroup.kill, Linux 5.14) and removes it; a cgroup can
    be removed once its last process has exited."""
    try:
        (path / "cgroup.kill").write_text("1")
    except OSError:
        pass
    deadline = time.monotonic() + wait
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:  # EBUSY: processes still exiting
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return
            time.sleep(0.02)
