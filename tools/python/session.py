"""A stateful Python session: one sandboxed worker process, restarted when it dies or hangs.

Blocking and thread-safe (callers run it in a thread), so it works from any event loop.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.tools.python.sandbox import (Limits, SandboxUnavailable, bwrap_command,
                                        find_bwrap, sandbox_environment, unsandboxed_command)
from agent.tools.python.worker import read_capture

STARTUP_SECONDS = 60.0  # a cold interpreter on a loaded machine can be slow
MAX_REPLY_BYTES = 4 << 20


@dataclass
class CellResult:
    output: str
    reset: bool = False      # the worker was restarted: the model must know its state is gone
    timed_out: bool = False


class WorkerDied(Exception):
    pass


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
                "without a sandbox with PythonTool(sandbox='none') or AGENT_PYTHON_SANDBOX=none "
                "(unsafe: the code runs as you, with your files and network)")
        self._root = Path(tempfile.mkdtemp(prefix="agent-python-"))
        self.workspace = Path(workspace).resolve() if workspace else self._root / "data"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._capture_dir = self._root / "out"
        self._capture_dir.mkdir()
        self.sandbox_uid = 200000 + secrets.randbelow(100000)  # a uid no one else uses
        if os.geteuid() == 0 and sandbox == "bwrap":
            for d in (self.workspace, self._capture_dir):
                os.chown(d, self.sandbox_uid, self.sandbox_uid)
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self.restarts = 0

    # -- process lifecycle -------------------------------------------------------------
    def _command(self) -> tuple[list[str], dict]:
        if self.sandbox == "bwrap":
            return bwrap_command(self.bwrap, self.limits, self.workspace, self._capture_dir,
                                 self.sandbox_uid)
        return unsandboxed_command(self.limits, self.workspace, self._capture_dir)

    def _start(self) -> None:
        argv, _ = self._command()
        self._stderr = tempfile.TemporaryFile()
        env = None if self.sandbox == "bwrap" else {**os.environ, **sandbox_environment(),
                                                   "HOME": str(self.workspace)}
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, cwd=self.workspace, env=env,
                                      start_new_session=True)
        self._buffer = b""
        try:
            hello = self._read_line(time.monotonic() + STARTUP_SECONDS)
            if not json.loads(hello).get("ready"):
                raise WorkerDied("unexpected greeting")
        except (WorkerDied, TimeoutError, ValueError) as e:
            detail = self._stderr_text() or str(e)
            self._kill()
            raise SandboxUnavailable(f"python tool: the sandboxed worker failed to start: "
                                     f"{detail.strip().splitlines()[-1] if detail.strip() else e}")

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
                raise WorkerDied("sent an oversized reply")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _death_reason(self) -> str:
        proc = self._proc
        try:
            code = proc.wait(timeout=2) if proc else None
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if code is None:
            return "stopped"
        signum = -code if code < 0 else code - 128 if code > 128 else None
        if signum == signal.SIGXCPU:
            return f"exceeded its CPU time limit of {self._cpu_seconds()} seconds"
        if signum == signal.SIGKILL:
            return "was killed (SIGKILL; possibly out of memory)"
        if signum:
            return f"was killed by signal {signal.Signals(signum).name}"
        return f"exited with status {code}"

    def _cpu_seconds(self) -> int:
        return int(self.limits.cpu_seconds or max(1, round(self.limits.timeout)))

    # -- running code -------------------------------------------------------------------
    def run(self, code: str, timeout: float | None = None) -> CellResult:
        timeout = self.limits.timeout if timeout is None else timeout
        with self._lock:
            if self._proc is None:
                self._start()
            request = json.dumps({"code": code, "cpu_seconds": self._cpu_seconds()}) + "\n"
            try:
                self._proc.stdin.write(request.encode())
                self._proc.stdin.flush()
                reply = json.loads(self._read_line(time.monotonic() + timeout))
                if not isinstance(reply, dict):
                    raise WorkerDied("sent a malformed reply")
            except TimeoutError:
                partial = self._partial_output()
                self._restart_after_failure()
                note = (f"[Execution timed out after {timeout:g} seconds. The Python process was "
                        "stopped and restarted: all variables, imports and definitions were "
                        f"lost (files in {'/mnt/data' if self.sandbox == 'bwrap' else self.workspace} remain).]")
                return CellResult(_join(partial, note), reset=True, timed_out=True)
            except (WorkerDied, BrokenPipeError, ValueError, OSError):
                partial = self._partial_output()
                reason = self._death_reason()
                self._restart_after_failure()
                note = (f"[The Python process {reason}. It was restarted: all variables, "
                        "imports and definitions were lost.]")
                return CellResult(_join(partial, note), reset=True)
            return CellResult(format_output(reply.get("output", ""), reply.get("tail", ""),
                                            int(reply.get("omitted", 0))))

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
        shutil.rmtree(self._root, ignore_errors=True)  # a workspace you passed lives elsewhere

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
    head = head.rstrip("\n")
    return head if head.strip() else empty


def _join(partial: str, note: str) -> str:
    return f"{partial.rstrip()}\n{note}" if partial.strip() else note
