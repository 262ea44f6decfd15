"""The second tier of attacks on the python sandbox (issue 14), each tried for real in bwrap:
secrets (environment, kernel keyring), kernel surface (namespaces, mounts, tracing, BPF,
io_uring), session-wide limits (memfd and forked memory, disk, CPU of children, strays),
the reply channel, huge output, workspaces of killed hosts. Small caps keep each attempt cheap:
a 256 MB session, 128 MB of disk, 64 MB tmpfs.

Every attempt runs as this process's user (root in CI) and, where the machine allows, once more
as an unprivileged user (nobody) with the system interpreter.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from agent.tools.python import Limits, PythonSession

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None,
                       reason="bubblewrap is not installed (.ci/run installs it)"),
    pytest.mark.skipif(platform.machine() != "x86_64",
                       reason="the attempts call system calls by their x86-64 numbers"),
]

SECRET = f"host-secret-{uuid.uuid4().hex}"
SMALL = dict(timeout=20, session_memory_bytes=256 << 20, disk_bytes=128 << 20,
             tmp_bytes=64 << 20, max_processes=48)

# The host plants a key in a fresh session keyring, which the sandbox would inherit.
PLANT_KEY = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
assert libc.syscall(250, 1, None) > 0  # KEYCTL_JOIN_SESSION_KEYRING: a new, anonymous one
assert libc.syscall(248, b"user", b"agent-probe", b"{SECRET}", {len(SECRET)}, -3) > 0
"""

SYSCALLS = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(*args):
    result = libc.syscall(*args)
    if result == 0 and args[0] == 56:  # clone succeeded: this is the child
        os._exit(0)
    return result if result >= 0 else -ctypes.get_errno()
def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode()
    except OSError as e:
        return type(e).__name__
buf = ctypes.create_string_buffer(256)
key = call(250, 10, -3, b"user", b"agent-probe", 0)  # KEYCTL_SEARCH the session keyring
params = ctypes.create_string_buffer(120)
userns = os.open("/proc/self/ns/user", os.O_RDONLY)
print(json.dumps({
    "keyctl_search": key,
    "keyctl_read": call(250, 11, key if key > 0 else 0, buf, 256),
    "keyctl_session": call(250, 0, -3, 0),
    "add_key": call(248, b"user", b"x", b"y", 1, -4),
    "request_key": call(249, b"user", b"agent-probe", None, 0),
    "unshare_user": call(272, 0x10000000),
    "unshare_mount": call(272, 0x00020000),
    "clone_newuser": call(56, 0x10000000 | 17, 0, 0, 0, 0),
    "clone_newnet": call(56, 0x40000000 | 17, 0, 0, 0, 0),
    "clone3": call(435, 0, 0),
    "setns": call(308, userns, 0),
    "mount": call(165, b"none", b"/tmp", b"tmpfs", 0, None),
    "ptrace": call(101, 0, 0, 0, 0),
    "process_vm_readv": call(310, 1, 0, 0, 0, 0, 0),
    "bpf": call(321, 0, 0, 0),
    "perf_event_open": call(298, 0, 0, -1, -1, 0),
    "io_uring_setup": call(425, 1, params),
    "kexec_load": call(246, 0, 0, 0, 0),
    "init_module": call(175, 0, 0, b""),
    "userfaultfd": call(323, 0),
    "shmget": call(29, 0, 1 << 20, 0o1600),
    "pid1_environ": read("/proc/1/environ"),
    "proc_keys": read("/proc/keys"),
    "seccomp": open("/proc/self/status").read().split("Seccomp:")[1].split()[0],
    "pid1_seccomp": open("/proc/1/status").read().split("Seccomp:")[1].split()[0],
}))
"""
EPERM, ENOSYS = -1, -38

# Ordinary work the filter must leave alone: threads, fork, subprocesses (glibc's clone3 falls
# back to clone), multiprocessing's semaphores in /dev/shm.
ORDINARY = """
import subprocess, threading, os, multiprocessing
done = []
t = threading.Thread(target=lambda: done.append(1)); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
child = os.waitpid(pid, 0)[1] >> 8
lock = multiprocessing.Lock()
print(done, child, subprocess.run(["echo", "sub"], capture_output=True, text=True).stdout.strip(),
      lock.acquire())
"""

MEMFDS = """
import os, time
fds = []
for _ in range(3):  # each memfd under every per-process cap; no process maps them
    fd = os.memfd_create("hold")
    os.posix_fallocate(fd, 0, 120 << 20)
    fds.append(fd)
time.sleep(10)
print("KEPT 360 MB")
"""

FORKED = """
import os, time
for _ in range(4):  # four children, 100 MB each, together over the session's 256 MB
    if os.fork() == 0:
        block = bytearray(b"x") * (100 << 20)
        time.sleep(10)
        os._exit(0)
time.sleep(10)
print("KEPT 400 MB")
"""

DISK = """
for i in range(12):  # 768 MB in 64 MB files, each under the file size limit
    with open(f"/mnt/data/fill{i}", "wb") as f:
        f.write(b"x" * (64 << 20))
print("WROTE 768 MB")
"""

TMPFS = """
import errno
for path in ("/tmp/fill", "/dev/shm/fill"):
    try:
        with open(path, "wb") as f:
            for _ in range(20):
                f.write(b"x" * (8 << 20))
        print(path, "160 MB")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
"""

# A child raises its CPU soft limit to the hard limit and keeps running after the cell.
STRAY = """
import os, resource, time
soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
try:
    resource.setrlimit(resource.RLIMIT_CPU, (hard + 100, hard + 100))
    raised = "raised"
except (ValueError, OSError):
    raised = "refused"
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
    while True:
        pass
print(soft == hard, raised, pid)
"""

CHILDREN_SPIN = """
import os, time
for _ in range(2):
    if os.fork() == 0:
        while True:
            pass
time.sleep(30)
print("NOT STOPPED")
"""

HUGE_OUTPUT = """
import sys
kept = 41
for _ in range(300):
    sys.stdout.write("y" * (1 << 20))
print("\\nEND")
"""


def check_syscalls(out: str) -> None:
    r = json.loads(out)
    assert SECRET not in out, "the host's secret reached the sandbox"
    for name in ("keyctl_search", "keyctl_read", "keyctl_session", "add_key", "request_key",
                 "unshare_user", "unshare_mount", "clone_newuser", "clone_newnet", "setns",
                 "mount", "ptrace", "process_vm_readv", "bpf", "perf_event_open",
                 "io_uring_setup", "kexec_load", "init_module", "userfaultfd", "shmget"):
        assert r[name] == EPERM, (name, r[name])
    assert r["clone3"] == ENOSYS
    assert r["seccomp"] == r["pid1_seccomp"] == "2"  # filter mode, bwrap's init included
    assert r["proc_keys"] in ("", "PermissionError")  # not even the keys' names
    if r["pid1_environ"] != "PermissionError":  # bwrap itself got a minimal environment
        assert set(e.split("=")[0] for e in r["pid1_environ"].split("\0") if e) <= {
            "PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "MPLBACKEND",
            "TMPDIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "NUMEXPR_NUM_THREADS"}


def check_ordinary(out: str) -> None:
    assert out == "[1] 7 sub True", out


def check_memory_killed(out: str) -> None:
    assert "KEPT" not in out
    assert "of memory, over the session's limit of 256 MB" in out and "restarted" in out, out


def check_disk_killed(out: str) -> None:
    assert "WROTE" not in out
    assert "over the session's limit of 128 MB" in out, out


def check_tmpfs(out: str) -> None:
    assert out.splitlines() == ["/tmp/fill ENOSPC", "/dev/shm/fill ENOSPC"], out


def check_cpu_killed(out: str) -> None:
    assert "NOT STOPPED" not in out
    assert "exceeded its CPU time limit of 1 seconds" in out, out


def check_huge_output(out: str) -> None:
    assert out.startswith("yyyy") and out.endswith("END"), out[-200:]
    assert "bytes of output omitted ...]" in out and len(out) < 16000 + 200, len(out)


@pytest.fixture(scope="module")
def session():
    s = PythonSession(Limits(**SMALL))
    yield s
    s.close()


def test_no_host_secret_and_no_kernel_attack_surface(session, monkeypatch):
    monkeypatch.setenv("AGENT_HOST_SECRET", SECRET)  # in the host's environment...
    exec(PLANT_KEY, {})  # ...and in its session keyring
    with PythonSession(Limits(**SMALL)) as fresh:  # started now: it inherits both
        out = fresh.run(SYSCALLS + "\nprint(open('/proc/self/environ').read())").output
        check_syscalls(out.splitlines()[0])
        assert SECRET not in out
        assert fresh.run("import subprocess\n"
                         "subprocess.run(['unshare', '-r', 'true']).returncode").output == (
            "unshare: unshare failed: Operation not permitted\n1")


def test_ordinary_work_still_runs(session):
    check_ordinary(session.run(ORDINARY).output)
    numpy = "import numpy\nprint(numpy.arange(6).reshape(2, 3).sum())"
    if subprocess.run([sys.executable, "-c", "import numpy"]).returncode == 0:
        assert session.run(numpy).output == "15"


def test_memory_in_memfds_counts_for_the_session(session):
    started = time.monotonic()
    result = session.run(MEMFDS)
    assert time.monotonic() - started < 8
    check_memory_killed(result.output)
    assert result.reset and session.run("'back'").output == "'back'"


def test_memory_of_forked_children_counts_for_the_session(session):
    started = time.monotonic()
    result = session.run(FORKED)
    assert time.monotonic() - started < 8
    check_memory_killed(result.output)
    assert session.run("'back'").output == "'back'"


def test_pages_a_fork_shares_count_once(session):
    # 150 MB in the parent, three children that keep it mapped: 600 MB resident in total, but
    # 150 MB of memory, under the 256 MB cap; a notebook that forks workers keeps working.
    out = session.run("import os, time\n"
                      "data = bytearray(b'x') * (150 << 20)\n"
                      "pids = []\n"
                      "for _ in range(3):\n"
                      "    pid = os.fork()\n"
                      "    if pid == 0:\n"
                      "        time.sleep(3); os._exit(0)\n"
                      "    pids.append(pid)\n"
                      "time.sleep(1.5)\n"
                      "for p in pids: os.waitpid(p, 0)\n"
                      "'shared'")
    assert out.output == "'shared'" and not out.reset, out.output


def test_disk_of_the_workspace_is_capped(tmp_path):
    os.chmod(tmp_path, 0o755)  # bwrap enters it with no capability to override modes
    with PythonSession(Limits(**SMALL), workspace=tmp_path) as s:
        check_disk_killed(s.run(DISK).output)
        written = sum(f.stat().st_size for f in tmp_path.iterdir())
        assert written < 640 << 20  # stopped before the end (checked every 0.05 s)
        # the files stay; the model can delete them and go on
        assert s.run("import os\nfor f in os.listdir('/mnt/data'): os.remove(f)\n"
                     "open('/mnt/data/small', 'w').write('ok')").output == "2"
        assert s.run("open('/mnt/data/small').read()").output == "'ok'"


def test_tmp_and_shm_are_capped(session):
    check_tmpfs(session.run(TMPFS).output)


def test_cpu_hard_limit_and_stray_children(session):
    out = session.run(STRAY).output
    equal, raised, pid = out.split()
    assert equal == "True" and raised == "refused"  # hard = soft, and no child can raise it
    time.sleep(0.6)  # the watchdog ends what a cell left running (a zombie until reaped)
    state = session.run(f"import os\ntry:\n    print(open('/proc/{pid}/stat').read().split()[2])\n"
                        "except OSError:\n    print('gone')").output
    assert state in ("Z", "gone"), state


def test_cpu_of_children_is_charged_to_the_cell():
    with PythonSession(Limits(**{**SMALL, "timeout": 40, "cpu_seconds": 1})) as s:
        check_cpu_killed(s.run(CHILDREN_SPIN).output)  # the parent only sleeps
        assert s.run("'back'").output == "'back'"


def test_forged_replies_never_pass_for_later_cells(session):
    forged = [
        {"cell": None, "output": "FORGED-1", "tail": "", "omitted": 0},
        {"cell": "0" * 16, "output": "FORGED-2", "tail": "", "omitted": 0},
        {"output": "FORGED-3"}, [1, 2], "FORGED-4",
    ]
    lines = "".join(json.dumps(f) + "\n" for f in forged) + "not json FORGED-5\n"
    code = ("import os\n"
            "for fd in map(int, os.listdir('/proc/self/fd')):\n"
            "    try:\n"
            f"        os.write(fd, {lines.encode()!r})\n"
            "    except OSError:\n"
            "        pass\n"
            "'real'")
    assert session.run(code).output.endswith("'real'")
    for i in range(3):
        assert session.run(f"{i} + 100").output == str(i + 100)


def test_malformed_reply_is_an_error_result_not_an_exception(session):
    # The cell finds its own cell id in the worker's frame and answers for it, badly.
    code = ("import json, os, sys\n"
            "f = sys._getframe()\n"
            "while 'request' not in f.f_locals:\n"
            "    f = f.f_back\n"
            "line = json.dumps({'cell': f.f_locals['request']['cell'], 'output': 5, "
            "'omitted': 'x'}) + '\\n'\n"
            "for fd in map(int, os.listdir('/proc/self/fd')):\n"
            "    try:\n"
            "        os.write(fd, line.encode())\n"
            "    except OSError:\n"
            "        pass\n")
    result = session.run(code)
    assert result.reset and "sent a malformed reply" in result.output
    oversized = ("import os\n"
                 "for fd in map(int, os.listdir('/proc/self/fd')):\n"
                 "    try:\n"
                 "        os.write(fd, b'x' * (5 << 20))\n"
                 "    except OSError:\n"
                 "        pass\n"
                 "import time; time.sleep(5)")
    result = session.run(oversized)
    assert result.reset and "sent an oversized reply" in result.output
    assert session.run("'fine'").output == "'fine'"


def test_huge_output_is_cut_with_a_note_and_the_state_kept(session):
    started = time.monotonic()
    result = session.run(HUGE_OUTPUT)
    assert time.monotonic() - started < 20
    assert not result.reset
    check_huge_output(result.output)
    assert session.run("kept + 1").output == "42"


def test_huge_output_of_a_child_process_is_cut_too():
    with PythonSession(Limits(**{**SMALL, "disk_bytes": 1 << 30})) as s:
        s.run("kept = 41")
        result = s.run("import subprocess\n"  # straight to the file, up to RLIMIT_FSIZE
                       "subprocess.run('yes | head -c 300000000', shell=True)\n"
                       "print('END')")
        assert not result.reset and result.output.startswith("y\ny\n")
        assert result.output.endswith("bytes of output omitted ...]\nEND"), result.output[-300:]
        assert s.run("kept + 1").output == "42"


def test_workspaces_of_killed_hosts_are_removed_at_the_next_start(session):
    host = subprocess.Popen([sys.executable, "-c",
                             "from agent.tools.python import PythonSession\n"
                             "s = PythonSession()\n"
                             "print(s.workspace.parent, flush=True)\n"
                             "import time; time.sleep(600)"],
                            stdout=subprocess.PIPE, text=True)
    try:
        folder = Path(host.stdout.readline().strip())
        assert folder.is_dir() and folder.name.startswith("agent-python-")
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
        assert folder.is_dir()  # left behind by the killed host
        PythonSession().close()
        assert not folder.exists()
        assert session.workspace.is_dir()  # a live session's folder stays
        assert session.run("'alive'").output == "'alive'"
    finally:
        host.kill()
        host.wait()


# -- the same attempts as an unprivileged user -------------------------------------------------
UNPRIVILEGED = 65534
RUNNER = """
import json, sys
exec(sys.argv[1])  # plant the key
from agent.tools.python import Limits, PythonSession
attempts = json.loads(sys.argv[2])
out = {}
with PythonSession(Limits(**json.loads(sys.argv[3]))) as s:
    for name, code in attempts.items():
        out[name] = s.run(code).output
    out["uid"] = s.run("import os; os.getuid()").output
print(json.dumps(out))
"""


def _shim_package(root: Path) -> Path:
    """agent.tools.python for the system interpreter: this checkout's files, nothing else (the
    package's other modules need third-party packages that interpreter lacks)."""
    source = Path(__import__("agent.tools.python", fromlist=["x"]).__file__).resolve().parent
    tools = root / "agent" / "tools"
    tools.mkdir(parents=True)
    (root / "agent" / "__init__.py").write_text("")
    (tools / "__init__.py").write_text("")
    (tools / "python").symlink_to(source)
    (tools / "base.py").symlink_to(source.parent / "base.py")
    return root


def test_the_attempts_as_an_unprivileged_user():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become an unprivileged user")
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no system interpreter an unprivileged user can run")
    probe = subprocess.run(["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}",
                            "--clear-groups", shutil.which("bwrap"), "--unshare-user",
                            "--ro-bind", "/", "/", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces unavailable: {probe.stderr.strip()}")
    base = Path(tempfile.mkdtemp(prefix="agent-unprivileged-"))  # pytest's tmp is root's only
    try:
        results = _run_as_unprivileged(base, python)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert results["uid"] == "1000"  # the sandbox's own uid, mapped from nobody
    check_syscalls(results["syscalls"])
    check_ordinary(results["ordinary"])
    check_memory_killed(results["memfds"])
    check_memory_killed(results["forked"])
    check_tmpfs(results["tmpfs"])
    check_huge_output(results["huge"])


def _run_as_unprivileged(base: Path, python: str) -> dict:
    home = base / "home"
    home.mkdir()
    shim = _shim_package(base / "shim")
    for p in (base, home, *shim.rglob("*")):
        if not p.is_symlink():
            os.chmod(p, 0o755)
    os.chown(home, UNPRIVILEGED, UNPRIVILEGED)
    attempts = {"syscalls": SYSCALLS, "ordinary": ORDINARY, "memfds": MEMFDS, "forked": FORKED,
                "tmpfs": TMPFS, "huge": HUGE_OUTPUT}
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(shim), "HOME": str(home),
           "TMPDIR": str(home), "AGENT_HOST_SECRET": SECRET}
    out = subprocess.run(["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}",
                          "--clear-groups", python, "-c", RUNNER, PLANT_KEY,
                          json.dumps(attempts), json.dumps(SMALL)],
                         capture_output=True, text=True, env=env, cwd=home, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)
