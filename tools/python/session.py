"""A stateful Python session: one sandboxed worker process, restarted when it dies or hangs.

Blocking and thread-safe (callers run it in a thread), so it works from any event loop.
A watchdog (limits.py) measures the running sandbox; a lock file marks the session's folder as
alive, so the next session removes folders whose host was killed. Folders are removed by
descriptor with their modes restored (files.py): the code can make them unreadable or deep.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import select
import signal
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.tools.python import cgroup, files, seccomp
from agent.tools.python.limits import (NamespaceMembers, Watchdog, pid_namespace,
                                       session_members)
from agent.tools.python.sandbox import (INSIDE_CAPTURE_DIR, WORKSPACE, Limits,
                                        SandboxUnavailable, bwrap_command, find_bwrap,
                                        launcher_namespaces, sandbox_environment,
                                        unsandboxed_command)
from agent.tools.python.worker import read_capture

STARTUP_SECONDS = 60.0  # a cold interpreter on a loaded machine can be slow
MAX_REPLY_BYTES = 4 << 20
ROOT_PREFIX = "agent-python-"
LOCK_NAME = ".alive"


@dataclass
class CellResult:
    output: str
    reset: bool = False      # the worker was restarted: the model must know its state is gone
    raised: bool = False     # the cell ended in an exception (the traceback is in `output`)
    timed_out: bool = False


class WorkerDied(Exception):
    pass


class ProtocolError(WorkerDied):
    """The worker is alive but broke the protocol (the code wrote into its channel)."""


class PythonSession:
    def __init__(self, limits: Limits | None = None, *, workspace: str | Path | None = None,
                 sandbox: str = "bwrap", bwrap: str | None = None):
        """sandbox: "bwrap" (default; refuses to run without it) or "none" (explicit opt-out)."""
        if sandbox not in ("bwrap", "none"):
            raise ValueError(f"sandbox must be 'bwrap' or 'none', not {sandbox!r}")
        self.limits = limits or Limits()
        self.sandbox = sandbox
        self.bwrap = find_bwrap(bwrap) if sandbox == "bwrap" else None
        if sandbox == "bwrap" and self.bwrap is None:
            raise SandboxUnavailable(
                "python tool: bubblewrap (`bwrap`) not found"
                + (f" at {bwrap}" if bwrap else " on PATH")
                + "; install it (apt-get install bubblewrap) or opt into running code "
                "without a sandbox with PythonTool(sandbox='none') or GPT_OSS_AGENT_PYTHON_SANDBOX=none "
                "(unsafe: the code runs as you, with your files and network)")
        remove_abandoned_folders()
        self._root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
        self._alive = hold_lock(self._root / LOCK_NAME)
        self.workspace = Path(workspace).resolve() if workspace else self._root / "data"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._capture_dir = self._root / "out"
        self._capture_dir.mkdir()
        # mount points of the launcher's tmpfs (in its own namespace: empty here)
        self._tmp_dirs = None
        if sandbox == "bwrap" and launcher_namespaces():
            self._tmp_dirs = (self._root / "tmp", self._root / "shm")
            for d in self._tmp_dirs:
                d.mkdir()
        self._cgroup_parent = cgroup.find_parent() if sandbox == "bwrap" else None
        self._cgroup: Path | None = None
        self.sandbox_uid = 200000 + secrets.randbelow(100000)  # a uid no one else uses
        if os.geteuid() == 0 and sandbox == "bwrap":
            for d in (self.workspace, self._capture_dir):
                os.chown(d, self.sandbox_uid, self.sandbox_uid)
        self._proc: subprocess.Popen | None = None
        self._watchdog: Watchdog | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self.restarts = 0

    # -- process lifecycle -------------------------------------------------------------
    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        self._buffer = b""
        if self.sandbox == "bwrap":
            try:
                filter_fd = seccomp.filter_fd()
            except seccomp.SeccompUnavailable as e:
                raise SandboxUnavailable(f"python tool: {e}") from None
            info_read, info_write = os.pipe()
            if self._cgroup_parent is not None:  # its /tmp and /dev/shm are in memory too
                limits = self.limits
                self._cgroup = cgroup.create(self._cgroup_parent, limits.session_memory_bytes
                                             + 2 * limits.tmp_bytes)
            argv, _ = bwrap_command(self.bwrap, self.limits, self.workspace, self._capture_dir,
                                    self.sandbox_uid, filter_fd, info_write,
                                    tmp_dirs=self._tmp_dirs, cgroup=self._cgroup)
            try:  # bwrap's own environment is visible inside as PID 1's: it gets nothing
                self._proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                    cwd="/", env=sandbox_environment(), start_new_session=True,
                    pass_fds=(filter_fd, info_write))
            finally:
                os.close(filter_fd)
                os.close(info_write)
        else:
            argv, _ = unsandboxed_command(self.limits, self.workspace, self._capture_dir)
            env = {**os.environ, **sandbox_environment(), "HOME": str(self.workspace)}
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, cwd=self.workspace, env=env,
                                          start_new_session=True)
        try:
            hello = json.loads(self._read_line(time.monotonic() + STARTUP_SECONDS))
            if not isinstance(hello, dict) or not hello.get("ready"):
                raise WorkerDied("unexpected greeting")
            self._watchdog = self._watch(hello, info_read if self.sandbox == "bwrap" else None)
        except (WorkerDied, TimeoutError, ValueError, KeyError, TypeError, OSError) as e:
            detail = self._stderr_text() or str(e)
            self._kill()
            raise SandboxUnavailable(f"python tool: the sandboxed worker failed to start: "
                                     f"{detail.strip().splitlines()[-1] if detail.strip() else e}")
        finally:
            if self.sandbox == "bwrap":
                os.close(info_read)

    def _watch(self, hello: dict, info_fd: int | None) -> Watchdog:
        """A watchdog on this worker's processes: its PID namespace, or (unsandboxed) its
        session; PID 1 (bwrap's init) and the worker itself are never strays."""
        proc = self._proc
        if info_fd is not None:
            # bwrap wrote it in one write before starting the worker, which has said hello
            init = int(json.loads(os.read(info_fd, 65536))["child-pid"])
            members = NamespaceMembers(pid_namespace(init))
            keep = {init} | {pid for pid in members() if _inner_pid(pid) == hello.get("pid")}
        else:
            members = lambda: session_members(proc.pid)  # noqa: E731
            keep = {proc.pid}

        def kill() -> None:
            for pid in (proc.pid, *keep):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self._members = members
        limits = self.limits
        sandboxed = info_fd is not None
        return Watchdog(members=members, keep=keep, kill=kill,
                        memory_limit=limits.session_memory_bytes,
                        cpu_limit=limits.per_call_cpu_seconds(), disk_limit=limits.disk_bytes,
                        # unsandboxed, the code can write anywhere: no folder to watch
                        folders=self._folders() if sandboxed else {},
                        # unsandboxed, the network namespace is the host's
                        netns_pid=init if sandboxed else None, cgroup_path=self._cgroup)

    def _folders(self) -> dict[Path, str]:
        return {self.workspace: WORKSPACE, self._capture_dir: INSIDE_CAPTURE_DIR}

    def _stderr_text(self) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read(8192).decode("utf-8", "replace")
        except Exception:
            return ""

    def _kill(self) -> None:
        """Kills the sandbox. bwrap's children die with it, and with the PID namespace's init
        gone the kernel kills every process left inside, background ones included."""
        proc, self._proc = self._proc, None
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.stop()
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except Exception:
                pass
        self._wait_for_sandbox_end()
        if watchdog is not None and watchdog.unmeasurable:  # nothing can move the folders now
            for folder in self._folders():
                files.tidy(folder, files.MAX_DEPTH)
        if self._cgroup is not None:
            cgroup.remove(self._cgroup)
            self._cgroup = None

    def _wait_for_sandbox_end(self, wait: float = 2.0) -> None:
        """The PID namespace's other processes die with its init, a moment after bwrap (a
        zombie, waiting for whoever reaps it, has ended)."""
        members = getattr(self, "_members", None)
        deadline = time.monotonic() + wait
        while members is not None and time.monotonic() < deadline:
            try:
                if not [pid for pid in members() if not _zombie(pid)]:
                    return
            except OSError:
                return
            time.sleep(0.01)

    def _read_line(self, deadline: float) -> str:
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise WorkerDied("closed its output")
            self._buffer += chunk
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise ProtocolError("sent an oversized reply")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _death_reason(self, error: Exception) -> str:
        if self._watchdog is not None:
            self._watchdog.check_kernel_kills()  # the kernel may have been first
        if self._watchdog is not None and self._watchdog.reason:
            return self._watchdog.reason
        if isinstance(error, ProtocolError):
            return str(error)
        proc = self._proc
        try:
            code = proc.wait(timeout=2) if proc else None
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code is None:
            return "stopped"
        signum = -code if code < 0 else code - 128 if code > 128 else None
        if signum == signal.SIGXCPU:
            return f"exceeded its CPU time limit of {self.limits.per_call_cpu_seconds()} seconds"
        if signum == signal.SIGKILL:
            return "was killed (SIGKILL; possibly out of memory)"
        if signum:
            return f"was killed by signal {signal.Signals(signum).name}"
        return f"exited with status {code}"

    # -- running code -------------------------------------------------------------------
    def run(self, code: str, timeout: float | None = None) -> CellResult:
        timeout = self.limits.timeout if timeout is None else timeout
        with self._lock:
            if self._proc is None:
                self._start()
            cell = secrets.token_hex(8)  # unknown to the code until this cell runs
            request = json.dumps({"cell": cell, "code": code}) + "\n"
            self._watchdog.cell_started()
            try:
                self._proc.stdin.write(request.encode())
                self._proc.stdin.flush()
                reply = self._reply(cell, time.monotonic() + timeout)
                self._watchdog.cell_finished()
            except TimeoutError:
                partial = self._partial_output()
                self._restart_after_failure()
                drive = "/mnt/data" if self.sandbox == "bwrap" else self.workspace
                note = (f"[Execution timed out after {timeout:g} seconds. The Python process was "
                        "stopped and restarted: all variables, imports and definitions were "
                        f"lost (files in {drive} remain).]")
                return CellResult(_join(partial, note), reset=True, timed_out=True)
            except (WorkerDied, OSError) as e:
                partial = self._partial_output()
                reason = self._death_reason(e)
                self._restart_after_failure()
                note = (f"[The Python process {reason}. It was restarted: all variables, "
                        "imports and definitions were lost.]")
                return CellResult(_join(partial, note), reset=True)
            head, tail, omitted, raised = reply
            return CellResult(format_output(head, tail, omitted), raised=raised)

    def _reply(self, cell: str, deadline: float) -> tuple[str, str, int, bool]:
        """(head, tail, omitted, raised) of the reply naming `cell`. Other lines in the channel were
        written by the code (it can reach the descriptor): skipped, whatever they hold."""
        while True:
            try:
                reply = json.loads(self._read_line(deadline))
            except ValueError:
                continue
            if not isinstance(reply, dict) or reply.get("cell") != cell:
                continue
            head, tail = reply.get("output"), reply.get("tail", "")
            omitted = reply.get("omitted", 0)
            if not (isinstance(head, str) and isinstance(tail, str)
                    and isinstance(omitted, int) and omitted >= 0):
                raise ProtocolError("sent a malformed reply")
            limit = self.limits.output_chars  # the worker cuts already; a forged reply may not
            if len(head) + len(tail) > limit:
                cut_head, cut_tail = head[:limit * 2 // 3], tail[-(limit // 3):] if tail else ""
                omitted += len(head) + len(tail) - len(cut_head) - len(cut_tail)
                head, tail = cut_head, cut_tail
            return head, tail, omitted, reply.get("raised") is True

    def _partial_output(self) -> str:
        try:
            head, tail, omitted = read_capture(str(self._capture_dir / "output"),
                                               self.limits.output_chars)
        except OSError:
            return ""
        return format_output(head, tail, omitted, empty="")

    def _restart_after_failure(self) -> None:
        self._kill()  # the next call starts a fresh worker
        self.restarts += 1

    def close(self) -> None:
        with self._lock:
            self._kill()
        files.remove(self._root)  # a workspace you passed lives elsewhere
        self._alive.close()

    def __enter__(self) -> "PythonSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self._kill()
        except Exception:
            pass


def format_output(head: str, tail: str, omitted: int, empty: str = "(no output)") -> str:
    if omitted:
        head = f"{head}\n[... {omitted} bytes of output omitted ...]\n{tail}"
    else:
        head += tail
    head = head.rstrip("\n")
    return head if head.strip() else empty


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True  # gone


def _inner_pid(pid: int) -> int | None:
    """A process's pid inside its own PID namespace (the last NSpid field)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def hold_lock(path: Path):
    """An exclusive lock held as long as the session lives (the kernel drops it at death)."""
    f = open(path, "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def remove_abandoned_folders() -> None:
    """Removes the folders of sessions whose host died without closing them (killed): ours
    (same owner) and unlocked. One without a lock file is being created, unless it is older
    than a minute (an older version's, or a host killed in between)."""
    base = Path(tempfile.gettempdir())
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(ROOT_PREFIX)]
    except OSError:
        return
    for folder in candidates:
        try:
            info = folder.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                continue
            try:
                f = open(folder / LOCK_NAME, "r")
            except FileNotFoundError:
                if time.time() - info.st_mtime > 60:
                    files.remove(folder)
                continue
            with f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                files.remove(folder)
        except OSError:
            pass  # alive (locked), or gone meanwhile


def _join(partial: str, note: str) -> str:
    return f"{partial.rstrip()}\n{note}" if partial.strip() else note
