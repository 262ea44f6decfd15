"""The python tool's sandbox, attacked for real. Each attempt must be contained and leave the
host unharmed; the fork storm is bounded (a few hundred sleepers), never exponential."""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid

import pytest

from agent.tools.python import Limits, PythonSession

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def session():
    s = PythonSession(Limits(timeout=20, memory_bytes=2 << 30, max_processes=48))
    yield s
    s.close()


def host_processes_with(marker: str) -> list[int]:
    """Host pids of processes that have `marker` as one of their arguments."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read().split(b"\0"):
                        found.append(int(pid))
            except OSError:
                pass
    return found


def test_runs_as_unprivileged_user_without_network(session):
    out = session.run("import os; print(os.getuid(), os.geteuid(), os.getcwd())").output
    uid, euid, cwd = out.split()
    assert int(uid) != 0 and int(euid) != 0 and cwd == "/mnt/data"
    caps = session.run("print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
    assert caps.output.strip() == "0000000000000000"
    assert session.run("import socket; socket.gethostname()").output.strip() == "'sandbox'"


def test_cannot_read_host_files(session, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    os.chmod(tmp_path, 0o755)
    code = (f"for p in [{str(secret)!r}, '/etc/shadow', '/root/.bashrc', {os.getcwd()!r}]:\n"
            "    try:\n"
            "        print(p, open(p).read()[:40] if os.path.isfile(p) else os.listdir(p))\n"
            "    except OSError as e:\n"
            "        print(p, type(e).__name__)\n")
    out = session.run("import os\n" + code).output
    assert "TOP-SECRET-VALUE" not in out
    assert out.count("FileNotFoundError") + out.count("PermissionError") == 4, out


def test_cannot_write_outside_the_workspace(session, tmp_path):
    marker = f"escape-{uuid.uuid4().hex}"
    code = ("import os\n"
            f"for d in ['/usr', '/etc', '/root', '/', {os.getcwd()!r}, '/run/agent']:\n"
            "    try:\n"
            f"        open(os.path.join(d, {marker!r}), 'w').write('x'); print(d, 'WROTE')\n"
            "    except OSError as e:\n"
            "        print(d, type(e).__name__)\n"
            f"open('/tmp/{marker}', 'w').write('private tmp')\n"
            "open('/mnt/data/result.txt', 'w').write('kept')\n"
            "print('done')")
    out = session.run(code).output
    assert "WROTE" not in out and out.strip().endswith("done"), out
    assert not os.path.exists(f"/tmp/{marker}")  # the sandbox's /tmp is its own
    assert not os.path.exists(os.path.join(os.getcwd(), marker))
    assert (session.workspace / "result.txt").read_text() == "kept"


def test_no_network_even_to_a_host_server_on_loopback(session):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass
    thread = threading.Thread(target=accept)
    thread.start()
    out = session.run(
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2); print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('blocked', type(e).__name__)\n"
        "try:\n"
        "    socket.getaddrinfo('example.org', 80); print('RESOLVED')\n"
        "except OSError as e:\n"
        "    print('no dns', type(e).__name__)").output
    thread.join()
    server.close()
    assert "CONNECTED" not in out and "blocked" in out and "RESOLVED" not in out, out
    assert not accepted


def test_bounded_fork_storm_stops_at_the_process_limit(session):
    out = session.run(
        "import os, time, signal\n"
        "children, error = [], None\n"
        "for _ in range(300):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as e:\n"
        "        error = e.errno; break\n"
        "    if pid == 0:\n"
        "        time.sleep(60); os._exit(0)\n"
        "    children.append(pid)\n"
        "for pid in children:\n"
        "    os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)\n"
        "print(len(children), error)").output
    count, errno = out.split()
    assert int(count) < 48 and errno == "11", out  # EAGAIN at the limit
    assert session.run("1 + 1").output == "2"  # the session survived


def test_allocating_8_gb_fails_inside(session):
    out = session.run("x = 41\ntry:\n    b = bytearray(8 << 30)\nexcept MemoryError:\n"
                      "    print('MemoryError')").output
    assert out == "MemoryError"
    assert session.run("x + 1").output == "42"  # state kept: only the allocation failed


def test_cannot_kill_the_parent(session):
    out = session.run(
        "import os, signal\n"
        f"for pid in (os.getppid(), 1, {os.getpid()}):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL); print(pid, 'sent')\n"
        "    except OSError as e:\n"
        "        print(pid, type(e).__name__)\n").output
    assert str(os.getpid()) + " ProcessLookupError" in out  # the host is not even visible
    assert session.run("'alive'").output == "'alive'"


def test_infinite_loop_and_background_process_are_killed(tmp_path):
    marker = f"bg-{uuid.uuid4().hex}"
    with PythonSession(Limits(timeout=3)) as s:
        s.run("value = 7")
        started = time.monotonic()
        result = s.run(
            "import subprocess, sys, os\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}'],"
            " start_new_session=True)\n"
            "print('started', flush=True)\n"
            "while True:\n    pass")
        assert time.monotonic() - started < 10
        assert result.timed_out and result.reset
        assert result.output.startswith("started\n[Execution timed out after 3 seconds.")
        assert "all variables" in result.output
        deadline = time.monotonic() + 5
        while host_processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert host_processes_with(marker) == []
        after = s.run("value").output
        assert "NameError" in after  # state was reset
        assert s.run("'fresh'").output == "'fresh'"


def test_cpu_limit_kills_and_restarts():
    with PythonSession(Limits(timeout=20, cpu_seconds=1)) as s:
        result = s.run("while True:\n    pass")
        assert result.reset and not result.timed_out
        assert "exceeded its CPU time limit of 1 seconds" in result.output
        assert s.run("2 * 21").output == "42"


def test_worker_exit_is_reported_and_recovered():
    with PythonSession(Limits(timeout=10)) as s:
        result = s.run("import os\nprint('bye', flush=True)\nos._exit(3)")
        assert result.reset and result.output == ("bye\n[The Python process exited with status "
                                                  "3. It was restarted: all variables, imports "
                                                  "and definitions were lost.]")
        assert s.run("'back'").output == "'back'"


def test_timeout_output_cannot_be_swapped_for_a_host_file(tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("HOST-SECRET")
    with PythonSession(Limits(timeout=1.5)) as s:
        capture = s.run("import os\n"
                        "[p for p in os.listdir('/run/agent/out')]").output
        assert "'output'" in capture  # where the cell's output goes
        result = s.run("import os\n"
                       "os.unlink('/run/agent/out/output')\n"
                       f"os.symlink({str(secret)!r}, '/run/agent/out/output')\n"
                       "while True:\n    pass")
        assert result.timed_out and "HOST-SECRET" not in result.output
        assert result.output.startswith("[Execution timed out")


def test_sandbox_dies_with_its_host_process():
    """SIGKILL the process that owns a session while a cell runs: the sandbox and its children
    go with it."""
    import signal
    import subprocess
    import sys
    marker = f"orphan-{uuid.uuid4().hex}"
    host = subprocess.Popen([sys.executable, "-c", (
        "import threading, time\n"
        "from agent.tools.python import PythonSession, Limits\n"
        "s = PythonSession(Limits(timeout=300))\n"
        "cell = (\"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        f"'import time; time.sleep(600)', '{marker}'], start_new_session=True); time.sleep(600)\")\n"
        "threading.Thread(target=s.run, args=(cell,), daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while not host_processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host_processes_with(marker)  # the sandboxed sleeper is running
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
        deadline = time.monotonic() + 5
        while host_processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert host_processes_with(marker) == []
    finally:
        host.kill()
        host.wait()
