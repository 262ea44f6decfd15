"""The jail around the python tool's worker: bubblewrap, seccomp, rlimits, an unprivileged uid.

Inside the sandbox the worker sees a read-only system (/usr, a few files of /etc, the Python
installation), a private writable workspace at /mnt/data, a private /tmp and /dev/shm
(tmpfs capped in bytes and in files), its own /proc and PID namespace, no network (an empty
network namespace), and it dies with its parent. bwrap cannot cap a tmpfs's files nor TCP's
buffers, so where the host may create namespaces (root, or unprivileged user namespaces, which
bwrap itself needs) the launcher (launcher.py) runs first: it mounts both tmpfs and makes the
network namespace, and joins the sandbox's memory cgroup (cgroup.py) where one is delegated.
bwrap itself starts with a minimal environment (the sandbox can read PID 1's), and a seccomp
filter (seccomp.py) denies keyrings, namespaces, mounts, tracing, BPF, io_uring, socket
families other than unix and inet, and the like. rlimits cap each process (CPU time with
hard = soft, address space, file size, processes, open files); the host's watchdog (limits.py)
caps the session as a whole.

rlimits do not bind root (and RLIMIT_NPROC counts per real uid), so the code never runs as
root: when the host is root, bwrap runs privileged (no user namespace) and the worker drops to a
fresh high uid of its own before running anything; otherwise bwrap maps the caller into a user
namespace, where the kernel counts processes per namespace, and `--disable-userns` closes
user namespaces inside. (For a root host `--disable-userns` would need `--unshare-user`, which
maps the sandbox onto host uid 0, exempt from RLIMIT_NPROC: there the filter's denial of
unshare, setns and clone's namespace flags is what keeps nested namespaces out.)
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).with_name("worker.py")
LAUNCHER = Path(__file__).with_name("launcher.py")
INSIDE_WORKER = "/run/agent/worker.py"
INSIDE_CAPTURE_DIR = "/run/agent/out"
WORKSPACE = "/mnt/data"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives",
             "ssl", "ca-certificates", "passwd", "group", "nsswitch.conf", "hosts",
             "mime.types", "fonts", "matplotlibrc")
MASKED_PROC_FILES = ("keys", "key-users")
QUIET_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMEXPR_NUM_THREADS")


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot start, and unsandboxed execution was not requested."""


@dataclass
class Limits:
    timeout: float = 30.0                 # wall-clock seconds per call
    cpu_seconds: int | None = None        # CPU seconds per call, all processes (default: timeout)
    memory_bytes: int = 4 << 30           # address space of each process
    session_memory_bytes: int = 4 << 30   # memory of all processes together, memfds included
    disk_bytes: int = 1 << 30             # files under /mnt/data together
    file_size_bytes: int = 256 << 20      # largest file a process may write
    max_processes: int = 64               # processes and threads of the sandbox uid
    tmp_bytes: int = 256 << 20            # size of the private /tmp, and of /dev/shm
    tmp_files: int = 16384                # files and folders in each (a kilobyte of kernel
                                          # memory each, whatever their size)
    output_chars: int = 16000             # longer output is cut in the middle, with a note

    def per_call_cpu_seconds(self) -> int:
        return int(self.cpu_seconds or max(1, round(self.timeout)))

    def rlimits(self) -> dict[str, int]:
        per_call = self.per_call_cpu_seconds()
        return {
            # a lifetime cap per process, hard = soft so no child can raise it; each cell's
            # own budget (all processes together) is the watchdog's
            "RLIMIT_CPU": max(per_call * 100, 3600),
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_FSIZE": self.file_size_bytes,
            "RLIMIT_NPROC": self.max_processes,
            # bounds the sockets (and so their buffers) a process holds or has in flight,
            # and what the watchdog reads per process; a notebook uses a few dozen
            "RLIMIT_NOFILE": 256,
            "RLIMIT_CORE": 0,
        }


def find_bwrap(path: str | None = None) -> str | None:
    if path is not None:
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    return shutil.which("bwrap")


def python_dirs() -> list[str]:
    """The folders the interpreter needs: its prefix(es) and site-packages, outside /usr."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  *site.getsitepackages(), os.path.dirname(os.path.realpath(sys.executable))]
    dirs: list[str] = []
    for d in sorted({os.path.realpath(c) for c in candidates if os.path.isdir(c)}):
        if any(d == s or d.startswith(s + "/") for s in ("/usr", *dirs)):
            continue
        dirs.append(d)
    return dirs


_namespaces: bool | None = None


def launcher_namespaces() -> bool:
    """Whether the launcher can make its namespaces here (tried once per process)."""
    global _namespaces
    if _namespaces is None:
        scratch = tempfile.mkdtemp(prefix="agent-python-probe-")
        try:
            _namespaces = subprocess.run(
                [sys.executable, "-I", "-S", "-B", str(LAUNCHER), "--probe", scratch],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _namespaces = False
        finally:
            os.rmdir(scratch)
    return _namespaces


def tcp_buffer_sysctls() -> dict[str, str]:
    """The sandbox network namespace's TCP buffer limits: the host's, with the maximum lowered
    to the default socket buffer size, which no socket there can raise (seccomp.py)."""
    values = {}
    for kind, fallback in (("rmem", "4096 131072 6291456"), ("wmem", "4096 16384 4194304")):
        try:
            with open(f"/proc/sys/net/ipv4/tcp_{kind}") as f:
                low, start, high = (int(v) for v in f.read().split())
            with open(f"/proc/sys/net/core/{kind}_default") as f:
                cap = int(f.read())
        except (OSError, ValueError):
            (low, start, high), cap = (int(v) for v in fallback.split()), 212992
        values[f"net.ipv4.tcp_{kind}"] = f"{min(low, cap)} {min(start, cap)} {min(high, cap)}"
    return values


def bwrap_command(bwrap: str, limits: Limits, workspace: Path, capture_dir: Path,
                  sandbox_uid: int, seccomp_fd: int, info_fd: int, *,
                  tmp_dirs: tuple[Path, Path] | None = None,
                  cgroup: Path | None = None) -> tuple[list[str], dict]:
    """The argv that starts the worker, and the worker's settings. bwrap reads the filter from
    `seccomp_fd` and writes {"child-pid": PID 1's host pid} to `info_fd`. With `tmp_dirs` (empty
    host folders for /tmp and /dev/shm) the launcher mounts the two tmpfs there and makes the
    network namespace; with `cgroup` it moves the sandbox into that cgroup first."""
    settings = {"rlimits": limits.rlimits(), "output_limit": limits.output_chars,
                "capture": f"{INSIDE_CAPTURE_DIR}/output"}
    launch: dict = {"cgroup": str(cgroup / "cgroup.procs")} if cgroup else {}
    argv = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--hostname", "sandbox", "--seccomp", str(seccomp_fd), "--info-fd", str(info_fd)]
    if tmp_dirs is None:
        argv.append("--unshare-net")  # else the launcher's empty network namespace is kept
    if os.geteuid() == 0:
        # Privileged bwrap, no user namespace: the worker drops to `sandbox_uid` itself, so
        # the kernel sees an ordinary unprivileged uid (rlimits bind, root files stay closed).
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        settings.update(uid=sandbox_uid, gid=sandbox_uid)
    else:
        argv += ["--unshare-user", "--uid", "1000", "--gid", "1000", "--disable-userns"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for name in MASKED_PROC_FILES:  # the names of the host's keys (their contents: seccomp)
        argv += ["--ro-bind", "/dev/null", f"/proc/{name}"]
    # --dev's own /dev/shm is an uncapped tmpfs: replaced by a capped one
    if tmp_dirs is not None:  # capped in bytes and files by the launcher
        tmp, shm = tmp_dirs
        launch.update(namespaces=True, sysctl=tcp_buffer_sysctls(),
                      tmpfs=[[str(d), limits.tmp_bytes, limits.tmp_files] for d in tmp_dirs])
        argv += ["--bind", str(shm), "/dev/shm", "--bind", str(tmp), "/tmp"]
    else:  # in bytes only: bwrap has no option for a tmpfs's inodes
        argv += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm",
                 "--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    # After the private /tmp, so an interpreter or venv that lives under /tmp stays visible.
    for d in python_dirs():
        argv += _parent_dirs(d) + ["--ro-bind", d, d]
    # bwrap would create missing parents as 0700 root, closed to the unprivileged uid.
    argv += _parent_dirs(WORKSPACE) + _parent_dirs(INSIDE_CAPTURE_DIR)
    argv += ["--bind", str(workspace), WORKSPACE,
             "--bind", str(capture_dir), INSIDE_CAPTURE_DIR,
             "--ro-bind", str(WORKER), INSIDE_WORKER,
             "--chdir", WORKSPACE, "--clearenv"]
    for key, value in sandbox_environment().items():
        argv += ["--setenv", key, value]
    argv += [sys.executable, "-s", "-B", INSIDE_WORKER, json.dumps(settings)]
    if launch:
        argv = [sys.executable, "-I", "-S", "-B", str(LAUNCHER), json.dumps(launch), *argv]
    return argv, settings


def _parent_dirs(path: str) -> list[str]:
    """bwrap arguments creating each missing ancestor of `path` world-traversable (0755)."""
    parts = Path(path).parts[1:-1]
    args: list[str] = []
    for i in range(len(parts)):
        args += ["--perms", "0755", "--dir", "/" + "/".join(parts[:i + 1])]
    return args


def sandbox_environment() -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKSPACE, "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
           "TMPDIR": "/tmp"}
    env.update({k: "1" for k in QUIET_THREADS})  # threads count against the process limit
    return env


def unsandboxed_command(limits: Limits, workspace: Path,
                        capture_dir: Path) -> tuple[list[str], dict]:
    """The worker as a plain child process: rlimits only, same user, network on."""
    settings = {"rlimits": limits.rlimits(), "output_limit": limits.output_chars,
                "capture": str(capture_dir / "output")}
    if os.geteuid() == 0:
        settings["rlimits"].pop("RLIMIT_NPROC")  # counts every root process on the host
    return [sys.executable, "-s", "-B", str(WORKER), json.dumps(settings)], settings
