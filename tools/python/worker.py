"""The process that runs the model's code: one long-lived interpreter, like a notebook kernel.

Runs inside the sandbox and imports nothing from this package (only the standard library).
Protocol, one JSON object per line: the host sends {"cell": ID, "code": ...} on stdin, the
worker answers {"cell": ID, "output": ..., "tail": ..., "omitted": n, "raised": bool} on its
original stdout ("raised": the cell ended in an exception, or exit with a failure status).
ID is a fresh random value per cell: the host takes only the reply that names the cell it is
waiting for, so a line the code writes into the channel can never pass for a later cell's
reply. The code's own stdout and stderr (including child processes) go to a fresh capture
file per cell, so nothing it prints lands in the channel by accident; past the output limit the
middle is dropped as it is written (only the head is stored and the tail kept in memory).

argv[1] is a JSON object of settings: rlimits to apply, the uid/gid to drop to (when started
as root), the output limit in characters.
"""
import ast
import io
import json
import linecache
import os
import resource
import stat
import sys
import traceback

CELL = "<cell>"


def apply_limits(settings):
    for name, value in settings.get("rlimits", {}).items():
        which = getattr(resource, name)
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)  # a host's lower limit stays
        resource.setrlimit(which, (value, value))  # hard = soft: no child can raise it
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
    """Executes one cell; prints the last expression's repr; returns whether it failed."""
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
        report(f"SystemExit: {e.code}\n")
        return e.code not in (None, 0)
    except BaseException as e:  # the model reads the traceback, minus this file's frames
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        report("".join(traceback.format_exception(type(e), e, tb)))
        return True
    return False


def report(text):
    """Writes to the cell's stderr; the cell may have closed or broken it."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except BaseException:
        try:
            os.write(2, text.encode("utf-8", "backslashreplace"))
        except OSError:
            pass


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


class CappedOutput(io.RawIOBase):
    """fd 1 for the cell's sys.stdout and sys.stderr: the first `limit` bytes go to the
    capture file, later ones only into a tail kept in memory, so any amount of output costs
    neither disk nor memory, and the cell never sees a full file."""

    def __init__(self, limit):
        self.limit = limit
        self.written, self.omitted, self.tail = 0, 0, bytearray()

    def writable(self):
        return True

    def fileno(self):
        return 1

    def write(self, data):
        data = bytes(data)
        size = len(data)
        room = self.limit - self.written
        if room > 0:
            try:
                os.write(1, data[:room])
                self.written += min(room, size)
                data = data[room:]
            except OSError:  # a child filled the file (RLIMIT_FSIZE): from now on, tail only
                self.written = self.limit
        if data:
            self.omitted += len(data)
            self.tail += data
            del self.tail[:-max(1, self.limit // 2)]
        return size


def text_stream(raw):
    return io.TextIOWrapper(io.BufferedWriter(raw, 8192), encoding="utf-8",
                            errors="backslashreplace", line_buffering=True)


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
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    replies.write(json.dumps({"ready": True, "pid": os.getpid(), "uid": os.getuid()}) + "\n")
    replies.flush()
    for line in requests:
        request = json.loads(line)
        redirect_output(capture)
        raw = CappedOutput(limit * 2 // 3)  # the rest of `limit` is the tail
        sys.stdout = sys.stderr = text_stream(raw)  # fresh: the last cell may have broken them
        raised = run_cell(request["code"], namespace)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass  # the cell may have closed or replaced its streams
        head, tail, omitted = read_capture(capture, limit)
        if raw.omitted:  # the file holds the head only; the tail was kept here
            head, tail = head + tail, raw.tail.decode("utf-8", "replace")
            omitted += raw.omitted - len(raw.tail)
        reply = {"cell": request.get("cell"), "output": head, "tail": tail, "omitted": omitted,
                 "raised": raised}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
