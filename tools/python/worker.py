"""The process that runs the model's code: one long-lived interpreter, like a notebook kernel.

Runs inside the sandbox and imports nothing from this package (only the standard library).
Protocol, one JSON object per line: the host sends {"code": ..., "cpu_seconds": ...} on stdin,
the worker answers {"output": ..., "omitted": n} on its original stdout. The code's own stdout
and stderr (including child processes) go to a fresh capture file per cell, so nothing it
prints can be mistaken for a protocol line by accident.

argv[1] is a JSON object of settings: rlimits to apply, the uid/gid to drop to (when started
as root), the output limit in characters.
"""
import ast
import json
import linecache
import math
import os
import resource
import stat
import sys
import traceback

CELL = "<cell>"


def apply_limits(settings):
    for name, value in settings.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    uid, gid = settings.get("uid"), settings.get("gid")
    if uid is not None and os.getuid() == 0:  # never keep root: rlimits do not bind it
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            raise SystemExit("worker: failed to drop root")


def split_last_expression(code):
    """(statements, last expression or None): the notebook rule for showing a value."""
    tree = ast.parse(code, CELL, "exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        return tree, last
    return tree, None


def run_cell(code, namespace):
    """Executes one cell; prints the last expression's repr; returns nothing."""
    linecache.cache[CELL] = (len(code), None, code.splitlines(True), CELL)
    try:
        body, last = split_last_expression(code)
        exec(compile(body, CELL, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, CELL, "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                print(repr(value))
    except SystemExit as e:
        print(f"SystemExit: {e.code}", file=sys.stderr)
    except BaseException as e:  # the model reads the traceback, minus this file's frames
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        sys.stderr.write("".join(traceback.format_exception(type(e), e, tb)))


def read_capture(path, limit):
    """(head, tail, omitted bytes): the cell's output, cut in the middle past `limit`.

    The host reads this file too, after a timeout: the cell may have replaced it with a
    symlink to a host file or a FIFO, so only a regular file is read, never followed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "", "", 0
        size = info.st_size
        if size <= limit:
            return f.read().decode("utf-8", "replace"), "", 0
        head = f.read(limit * 2 // 3).decode("utf-8", "replace")
        f.seek(size - limit // 3)
        tail = f.read().decode("utf-8", "replace")
        return head, tail, size - len(head) - len(tail)


def redirect_output(path):
    """Points fds 1 and 2 at a new, empty capture file (old writers keep the old inode)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def set_cpu_budget(seconds):
    """RLIMIT_CPU counts the whole process life: allow `seconds` more for this cell."""
    if not seconds:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    soft = math.ceil(used.ru_utime + used.ru_stime + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def main():
    settings = json.loads(sys.argv[1])
    apply_limits(settings)
    limit = int(settings.get("output_limit", 20000))
    capture = settings["capture"]
    # The protocol keeps private copies of the original pipes; the cell never sees them as 0/1/2.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    redirect_output(capture)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace",
                      closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace",
                      closefd=False)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    replies.write(json.dumps({"ready": True, "pid": os.getpid(), "uid": os.getuid()}) + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        redirect_output(capture)
        set_cpu_budget(request.get("cpu_seconds"))
        run_cell(request["code"], namespace)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass  # the cell may have closed or replaced its streams
        head, tail, omitted = read_capture(capture, limit)
        reply = {"output": head, "tail": tail, "omitted": omitted}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
