"""Limits that hold for a whole sandbox session, whatever its processes do.

rlimits are per process: a cell that forks a few children, or keeps pages in memfds that no
process maps, or writes many files, gets past them. The host therefore watches the session
from outside, in a thread: every process of the sandbox (its PID namespace) is measured, and
past a limit the sandbox is killed and the model told why.

- memory: anonymous + shared memory of every process (proportional, so pages a fork shares
  count once) plus the memfds they hold open, plus every socket of the sandbox's network
  namespace (those in flight between processes too) at the most its buffers can hold; /tmp and
  /dev/shm are size- and inode-capped tmpfs on top. Where the host delegates a cgroup v2
  memory controller (cgroup.py) the kernel also caps all of it, kernel memory included, and
  the watchdog reports its kills;
- CPU: the time of every process, live and reaped, since the cell started (children and what
  they leave running between cells are charged to it);
- disk: the bytes under /mnt/data and the output folder, walked by descriptor (files.py): a
  folder that cannot be listed or is nested too deep counts as over the limit;
- stray processes: whatever a cell left running is killed when it returns.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from agent.tools.python import cgroup
from agent.tools.python.files import MAX_DEPTH, Unmeasurable, usage

CELL_INTERVAL = 0.05   # seconds between checks while a cell runs
IDLE_INTERVAL = 0.25   # between cells only threads the cell left behind can still act
DISK_SHARE = 0.05      # at most this share of the time goes to walking the workspace
MAX_FILES = 100_000    # a workspace with more entries counts as over its limit
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("ascii", "replace")


def _sysctl(name: str, default: int) -> int:
    try:
        return int(_read("/proc/sys/" + name.replace(".", "/")).split()[0])
    except (OSError, ValueError, IndexError):
        return default


# The most a socket's buffers hold once their sizes cannot be raised (seccomp.py; TCP's
# autotuning is capped the same way in the sandbox's network namespace, launcher.py).
SOCKET_BYTES = (_sysctl("net.core.wmem_default", 212992)
                + _sysctl("net.core.rmem_default", 212992))


def pid_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


class NamespaceMembers:
    """Host pids of the processes in a PID namespace. Host processes seen outside it are not
    looked at again until the next full scan, every tenth: a sandbox process that reuses such
    a pid stays unseen for ten checks at most (half a second during a cell)."""

    FULL_SCAN_EVERY = 10

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.outside: set[int] = set()
        self.scans = 0

    def __call__(self) -> list[int]:
        self.scans += 1
        if self.scans % self.FULL_SCAN_EVERY == 0:
            self.outside.clear()
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in self.outside:
                try:
                    inside = os.readlink(f"/proc/{name}/ns/pid") == self.namespace
                except OSError:
                    continue  # gone, or not ours to look at
                (pids.append if inside else self.outside.add)(int(name))
        return pids


def session_members(sid: int) -> list[int]:
    """Host pids of the processes in a session (the unsandboxed worker's)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(_read(f"/proc/{name}/stat").rsplit(")", 1)[1].split()[3]) == sid:
                    pids.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and of the children it reaped."""
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def memory_bytes(pid: int, seen_memfds: set, precise: bool) -> int:
    """Anonymous + shared memory of a process, plus memfds it holds that no earlier process
    did (their pages belong to no mapping once unmapped). Resident sizes are cheap counters
    but count pages a fork shares in each process; `precise` takes the proportional sizes
    instead (the kernel walks the page tables: a millisecond for a process with numpy)."""
    if precise:
        keys, source = ("Pss_Anon:", "Pss_Shmem:"), f"/proc/{pid}/smaps_rollup"
    else:
        keys, source = ("RssAnon:", "RssShmem:"), f"/proc/{pid}/status"
    total = 0
    for line in _read(source).splitlines():
        if line.startswith(keys):
            total += int(line.split()[1]) * 1024
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}").startswith("/memfd:"):
                info = os.stat(f"{fd_dir}/{fd}")
                if (info.st_dev, info.st_ino) not in seen_memfds:
                    seen_memfds.add((info.st_dev, info.st_ino))
                    total += info.st_blocks * 512
        except OSError:
            pass
    return total


def sockets_in_namespace(pid: int) -> int:
    """Sockets alive in the network namespace of `pid`: those held by any process and those in
    flight in a message (SCM_RIGHTS), which no process's descriptors show."""
    for line in _read(f"/proc/{pid}/net/sockstat").splitlines():
        if line.startswith("sockets: used "):
            return int(line.split()[2])
    return 0


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB"


class Watchdog:
    """Measures one running sandbox and kills it past a limit; `reason` then says why."""

    def __init__(self, *, members, keep: set[int], kill, memory_limit: int, cpu_limit: float,
                 disk_limit: int, folders: dict[Path, str], netns_pid: int | None = None,
                 cgroup_path: Path | None = None):
        """folders: {host path: the name the code knows it by}; netns_pid: a process in the
        sandbox's own network namespace, whose sockets are charged; cgroup_path: the sandbox's
        memory cgroup."""
        self.members, self.keep, self._kill = members, keep, kill
        self.memory_limit, self.cpu_limit = memory_limit, cpu_limit
        self.folders, self.netns_pid, self.cgroup_path = folders, netns_pid, cgroup_path
        # a workspace already over its limits (an earlier session's files) may shrink, not grow
        self.disk_limit, self.max_entries = disk_limit, MAX_FILES
        try:
            size, entries = usage(folders)
            self.disk_limit, self.max_entries = max(disk_limit, size), max(MAX_FILES, entries)
        except Unmeasurable:
            pass  # the first check stops the sandbox, and the session repairs the folder
        self.unmeasurable = False  # stopped for a folder it could not measure
        self.reason: str | None = None
        self.peak_memory = 0
        self._cell_running = False
        self._cell = self._measured_cell = 0
        self._cpu_start = self._cpu_last = None
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="python-sandbox-watchdog",
                                        daemon=True)
        self._thread.start()

    # O(1), no wake-up: a warm cell's round trip is a fraction of a millisecond, a check a few
    def cell_started(self) -> None:
        self._cell += 1
        self._cell_running = True

    def cell_finished(self) -> None:
        self._cell_running = False

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _memory(self, pids: list[int], precise: bool) -> int:
        seen: set = set()
        total = 0
        for pid in pids:
            try:
                total += memory_bytes(pid, seen, precise)
            except (OSError, ValueError):
                pass  # exited meanwhile
        return total

    def _sockets(self) -> int:
        if self.netns_pid is None:
            return 0
        try:
            return sockets_in_namespace(self.netns_pid) * SOCKET_BYTES
        except (OSError, ValueError, IndexError):
            return 0  # gone: the sandbox is ending

    def check_kernel_kills(self) -> None:
        """Sets `reason` when the kernel killed in the sandbox's cgroup for memory."""
        if self.reason is None and self.cgroup_path and cgroup.oom_kills(self.cgroup_path):
            self._exceeded(f"was stopped by the kernel: its processes reached the sandbox's "
                           f"memory limit (the session's {_mb(self.memory_limit)} plus /tmp "
                           "and /dev/shm), kernel memory such as socket buffers included")

    def _cpu_total(self, pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except (OSError, IndexError, ValueError):
                pass
        return total

    def _loop(self) -> None:
        next_walk = 0.0
        while not self._stopped and self.reason is None:
            self._wake.wait(CELL_INTERVAL if self._cell_running else IDLE_INTERVAL)
            self._wake.clear()
            if self._stopped:
                return
            started = time.monotonic()
            walk = started >= next_walk  # a small workspace every check, a huge one seldom
            try:
                self.check(disk=walk)
            except Exception as e:  # measuring must never stop the limits: fail closed
                self._exceeded(f"could not be measured ({type(e).__name__}: {e})")
            if walk:
                next_walk = started + (time.monotonic() - started) / DISK_SHARE

    def check(self, disk: bool = True) -> None:
        pids = self.members()
        if not self._cell_running:
            for pid in pids:
                if pid not in self.keep and not self._cell_running:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        self.check_kernel_kills()
        if self.reason:
            return
        sockets = self._sockets()
        memory = self._memory(pids, precise=False) + sockets
        if memory > self.memory_limit:  # resident sizes bound the proportional ones: confirm
            memory = self._memory(pids, precise=True) + sockets
        self.peak_memory = max(self.peak_memory, memory)
        if memory > self.memory_limit:
            return self._exceeded(f"was stopped: its processes held {_mb(memory)} of memory, "
                                  f"over the session's limit of {_mb(self.memory_limit)}")
        # A cell's CPU: since the last check before it started (the cells between two checks
        # share one budget); time spent between cells by what a cell left is charged too.
        total = self._cpu_total(pids)
        if self._cpu_start is None or self._cell != self._measured_cell:
            self._measured_cell = self._cell
            self._cpu_start = total if self._cpu_last is None else self._cpu_last
        self._cpu_last = total
        if total - self._cpu_start > self.cpu_limit:
            return self._exceeded(f"exceeded its CPU time limit of {self.cpu_limit:g} seconds")
        if disk:
            try:
                size = usage(self.folders, self.max_entries)[0]
            except Unmeasurable as e:
                if not e.hidden:
                    return self._exceeded(f"was stopped: {e}, over the session's limit (those "
                                          "in /mnt/data were kept)")
                self.unmeasurable = True  # the session repairs the folders once it is dead
                return self._exceeded(
                    f"was stopped: {e}, so the files there could not be counted against the "
                    f"session's disk limit of {_mb(self.disk_limit)}; its folders were made "
                    f"readable again and those nested more than {MAX_DEPTH} deep removed")
            if size > self.disk_limit:
                return self._exceeded(
                    f"was stopped: the files it wrote grew to {_mb(size)}, over the session's "
                    f"limit of {_mb(self.disk_limit)} (those in /mnt/data were kept)")

    def _exceeded(self, reason: str) -> None:
        self.reason = reason
        self._kill()

