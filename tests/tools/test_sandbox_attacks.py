"""The second tier of attacks on the python sandbox (issue 14), each tried for real in bwrap:
secrets (environment, kernel keyring), kernel surface (namespaces, mounts, tracing, BPF,
io_uring, socket families), session-wide limits (memfd and forked memory, socket buffers,
files in /tmp, disk, hidden and deep folders, CPU of children, strays), the reply channel,
huge output, workspaces of killed hosts. Small caps keep each attempt cheap: a 256 MB session,
128 MB of disk (64 MB for the hidden and deep folders), 64 MB tmpfs.

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
from agent.tools.python.files import MAX_DEPTH
from agent.tools.python.sandbox import launcher_namespaces

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

# Socket buffers are kernel memory no process's counters show: fill as many socket pairs as the
# kernel gives (each end's send buffer raised first), park them in flight over a carrier socket
# (SCM_RIGHTS: in no process's descriptors), keep the rest as descriptors, hold them across cells.
PARK_SOCKETS = """
import array, errno, socket
def fill(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 30)
    s.setblocking(False)
    n = 0
    try:
        while True:
            n += s.send(b"x" * 65536)
    except BlockingIOError:
        return n
carrier = socket.socketpair()
held, parked, stops = [*carrier], 0, []
while parked < (768 << 20):
    try:
        a, b = socket.socketpair()
    except OSError as e:
        stops.append(errno.errorcode[e.errno])
        break
    parked += fill(a) + fill(b)
    try:
        carrier[0].sendmsg([b"f"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                     array.array("i", [a.fileno(), b.fileno()]))])
        a.close(), b.close()
    except OSError as e:  # too many in flight: keep them here
        held += [a, b]
        stops += [] if stops else [errno.errorcode[e.errno]]
carrier[1].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 30)
print(parked >> 20, ",".join(stops) or "-",
      carrier[1].getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
"""

# The same from three children at once, during a cell.
PARK_SOCKETS_FORKED = ("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n"
                       + "".join(f"        {line}\n" for line in PARK_SOCKETS.splitlines())
                       + "        time.sleep(10)\n        os._exit(0)\n"
                       + "time.sleep(10)\nprint('KEPT')")

# Empty files cost no tmpfs bytes, but each about a kilobyte of kernel memory (inode, dentry).
TMP_FILES = """
import errno, os
for folder in ("/tmp", "/dev/shm"):
    made, error = 0, None
    try:
        while made < 200_000:
            os.close(os.open(f"{folder}/{made}", os.O_CREAT | os.O_WRONLY))
            made += 1
    except OSError as e:
        error = errno.errorcode[e.errno]
    for i in range(made):
        os.unlink(f"{folder}/{i}")
    print(folder, made, error)
"""

# Families a notebook never needs, by raw system call (one with high bits set included: the
# kernel reads an int); never connected, only created. The allowed ones must still work.
SOCKET_FAMILIES = """
import asyncio, ctypes, errno, json, multiprocessing, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def make(nr, family, kind):
    fd = libc.syscall(nr, ctypes.c_long(family), kind, 0, ctypes.create_string_buffer(8))
    return "created" if fd >= 0 else errno.errorcode[ctypes.get_errno()]
a, b = multiprocessing.Pipe()
a.send("pipe")
print(json.dumps({
    "vsock": make(41, 40, 1), "packet": make(41, 17, 3), "netlink": make(41, 16, 3),
    "vsock_high_bits": make(41, (1 << 32) | 40, 1), "netlink_pair": make(53, 16, 3),
    "unix": make(41, 1, 1), "inet": make(41, 2, 2), "inet6": make(41, 10, 2),
    "ordinary": [b.recv(), asyncio.run(asyncio.sleep(0, "asyncio"))],
}))
"""

# A folder its owner cannot list (mode 0300: write and search only): a walk by path skips it.
# Written at a steady pace, so the cell outlasts the watchdog's next checks.
HIDDEN_FOLDER = """
import os, time
os.mkdir("/mnt/data/hidden")
os.chmod("/mnt/data/hidden", 0o300)
for i in range(300):
    with open(f"/mnt/data/hidden/f{i // 30}", "ab") as f:
        f.write(b"x" * (1 << 20))
    time.sleep(0.005)
print("WROTE 300 MB")
"""

# Left for the host to remove at close, before a check can stop the cell: folders without read
# permission, one without any, each with a file.
UNREADABLE_LEFT = """
import os
for name in ("a", "a/b", "a/b/c"):
    os.mkdir(f"/mnt/data/{name}")
    open(f"/mnt/data/{name}/file", "w").write("x")
os.chmod("/mnt/data/a/b/c", 0)
os.chmod("/mnt/data/a/b", 0o300)
os.chmod("/mnt/data/a", 0o100)
"""


def nested_folders(levels: int, name_length: int) -> str:
    """Folders nested `levels` deep, then 100 MB at the bottom: with long names the path passes
    PATH_MAX, where a walk by path stops (ENAMETOOLONG)."""
    name = "d" * name_length
    return ("import os\n"
            "fd = os.open('/mnt/data', os.O_RDONLY)\n"
            f"for _ in range({levels}):\n"
            f"    os.mkdir('{name}', dir_fd=fd)\n"
            f"    deeper = os.open('{name}', os.O_RDONLY, dir_fd=fd)\n"
            "    os.close(fd)\n"
            "    fd = deeper\n"
            "out = os.open('big', os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)\n"
            "import time\n"
            "for _ in range(100):\n"
            "    os.write(out, b'x' * (1 << 20))\n"
            "    time.sleep(0.01)\n"
            "print('WROTE 100 MB')")


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


def check_tmp_files(out: str) -> None:
    rows = [line.split() for line in out.splitlines()]
    assert [row[0] for row in rows] == ["/tmp", "/dev/shm"], out
    for _, made, error in rows:  # stopped at the inode limit, far below 200,000
        assert int(made) < Limits().tmp_files and error == "ENOSPC", out


def check_socket_families(out: str) -> None:
    r = json.loads(out)
    for family in ("vsock", "packet", "netlink", "vsock_high_bits", "netlink_pair"):
        assert r[family] in ("EAFNOSUPPORT", "EPERM"), (family, r[family])
    assert r["unix"] == r["inet"] == r["inet6"] == "created", r
    assert r["ordinary"] == ["pipe", "asyncio"], r


def check_hidden_folder(out: str) -> None:
    assert "WROTE" not in out
    assert "/mnt/data/hidden is a folder that cannot be listed" in out, out
    assert "could not be counted against the session's disk limit of 64 MB" in out, out


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


def test_socket_buffers_are_bounded_and_counted():
    with PythonSession(Limits(**SMALL)) as s:
        result = s.run(PARK_SOCKETS)
        assert not result.reset, result.output  # a notebook may hold sockets
        parked, stops, buffer = result.output.split()
        with open("/proc/sys/net/core/wmem_default") as f:
            default = int(f.read())
        # no send buffer grows past the system's default, and the descriptors (256, as many
        # again in flight) run out long before 768 MB: each socket holds about one buffer
        assert int(buffer) == default
        assert "EMFILE" in stops and int(parked) << 20 < 1.25 * 2 * 256 * default, result.output
        assert s.run("len(held) > 0").output == "True"  # still held in the next cell...
        time.sleep(0.5)  # ...and counted: the watchdog charges every socket, in flight too
        assert s._watchdog.peak_memory >= int(parked) << 20
        s.run("for x in held: x.close()\ndel carrier, held")  # the children get their own
        check_memory_killed(s.run(PARK_SOCKETS_FORKED).output)  # three such: over the cap
        assert s.run("'back'").output == "'back'"


def test_tmp_and_shm_are_capped_in_files(session):
    if not launcher_namespaces():
        pytest.skip("the launcher cannot make namespaces here: bwrap's tmpfs cap bytes only")
    check_tmp_files(session.run(TMP_FILES).output)


def test_socket_families_outside_unix_and_inet_cannot_be_created(session):
    check_socket_families(session.run(SOCKET_FAMILIES).output)


def test_deep_folders_are_measured_or_stopped_and_removed_at_close():
    with PythonSession(Limits(**{**SMALL, "disk_bytes": 64 << 20})) as s:
        root = s.workspace.parent
        # deeper than MAX_DEPTH (and than PATH_MAX): stopped, the part below MAX_DEPTH removed
        out = s.run(nested_folders(MAX_DEPTH + 16, 60)).output
        assert "WROTE" not in out and f"is nested more than {MAX_DEPTH} folders deep" in out
        assert "restarted" in out, out
        depth = s.run("import os\n"
                      "fd, depth = os.open('/mnt/data', os.O_RDONLY), 0\n"
                      "while os.listdir(fd):\n"
                      "    fd = os.open(os.listdir(fd)[0], os.O_RDONLY, dir_fd=fd)\n"
                      "    depth += 1\n"
                      "depth").output
        assert depth == str(MAX_DEPTH)
        s.run("import shutil; shutil.rmtree('/mnt/data/' + 'd' * 60)")
        # fewer levels, longer names, past PATH_MAX too: walked by descriptor, so counted
        out = s.run(nested_folders(30, 200)).output
        assert "WROTE" not in out and "over the session's limit of 64 MB" in out, out
    assert not root.exists()  # removed at close, deep folders and all


def test_a_delegated_cgroup_holds_the_sandbox(tmp_path, monkeypatch):
    """Where the host delegates a cgroup v2 memory controller the sandbox joins a cgroup of its
    own, capped at the session's memory plus /tmp and /dev/shm, and a kill by the kernel there
    is reported. Few machines delegate one (not this test's): a folder stands in for cgroupfs."""
    fake = tmp_path / "cgroup"
    fake.mkdir()
    (fake / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (fake / "cgroup.procs").write_text("")
    monkeypatch.setenv("GPT_OSS_AGENT_PYTHON_CGROUP", str(fake))
    with PythonSession(Limits(**SMALL)) as s:
        assert s.run("'in'").output == "'in'"
        child, = fake.glob("agent-python-*")
        assert (child / "memory.max").read_text() == str((256 + 2 * 64) << 20)
        assert (child / "memory.oom.group").read_text() == "1"
        assert int((child / "cgroup.procs").read_text()) == s._proc.pid  # became bwrap
        (child / "memory.events").write_text("oom 1\noom_kill 1\n")
        out = s.run("import time; time.sleep(10)").output
        assert "stopped by the kernel: its processes reached the sandbox's memory limit" in out
        assert s.run("'again'").output == "'again'"  # a fresh worker in a fresh cgroup
        assert len(list(fake.glob("agent-python-*"))) == 2


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
    python = _unprivileged_python()
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
    check_socket_families(results["families"])
    check_tmp_files(results["tmp_files"])  # the launcher in a user namespace of nobody's


def test_hidden_folders_as_an_unprivileged_user():
    """A folder made unreadable to its owner hides nothing from the disk limit and is removed
    at close (a root host reads any folder: these holes were an unprivileged host's)."""
    python = _unprivileged_python()
    base = Path(tempfile.mkdtemp(prefix="agent-unprivileged-"))
    try:
        results = _run_as_unprivileged(base, python, {
            "hidden": HIDDEN_FOLDER,
            "listed": "import os\nsorted(os.listdir('/mnt/data/hidden'))[:2]",
            "left": UNREADABLE_LEFT}, {**SMALL, "disk_bytes": 64 << 20})
        leftovers = [p.name for p in (base / "home").iterdir()]
    finally:
        for p in base.rglob("*"):  # lets this test's own cleanup through, whatever happened
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o755)
        shutil.rmtree(base, ignore_errors=True)
    check_hidden_folder(results["hidden"])
    assert results["listed"] == "['f0', 'f1']"  # readable again, its files kept
    assert results["left"] == "(no output)"
    assert leftovers == []  # the session's folder went entirely at close


def _unprivileged_python() -> str:
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
    return python


def _run_as_unprivileged(base: Path, python: str, attempts: dict | None = None,
                         limits: dict | None = None) -> dict:
    home = base / "home"
    home.mkdir()
    shim = _shim_package(base / "shim")
    for p in (base, home, *shim.rglob("*")):
        if not p.is_symlink():
            os.chmod(p, 0o755)
    os.chown(home, UNPRIVILEGED, UNPRIVILEGED)
    attempts = attempts or {
        "syscalls": SYSCALLS, "ordinary": ORDINARY, "memfds": MEMFDS, "forked": FORKED,
        "tmpfs": TMPFS, "huge": HUGE_OUTPUT, "families": SOCKET_FAMILIES, "tmp_files": TMP_FILES}
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(shim), "HOME": str(home),
           "TMPDIR": str(home), "AGENT_HOST_SECRET": SECRET}
    out = subprocess.run(["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}",
                          "--clear-groups", python, "-c", RUNNER, PLANT_KEY,
                          json.dumps(attempts), json.dumps(limits or SMALL)],
                         capture_output=True, text=True, env=env, cwd=home, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)
