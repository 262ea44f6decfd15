"""The sandbox's first process: prepares what bwrap cannot, then becomes bwrap (exec).

bwrap (0.8) mounts its tmpfs with a size but no inode limit (an empty file costs no tmpfs
bytes but about a kilobyte of kernel memory, and a tmpfs allows millions by default), it cannot
join a cgroup, and the network namespace it makes keeps the kernel's TCP buffer limits
(megabytes per socket). So the host starts this instead, as its own user, with argv[1] a JSON
object of settings and argv[2:] the bwrap command line:

- "cgroup": a cgroup.procs file to join first (the sandbox's memory cgroup, where delegated);
- "namespaces": a private mount namespace and an empty network namespace (owned by a new user
  namespace mapping only the caller, when the caller is not root), in which
  - "tmpfs": [[mount point, bytes, inodes], ...] are mounted, bwrap then binding them;
  - "sysctl": {name: value} are set (per-namespace TCP buffer limits), and loopback brought up.

Nothing here outlives the sandbox: the namespaces and mounts die with their last process.
Imports only the standard library. "--probe FOLDER" tries all of it on an empty folder and exits.
"""
import ctypes
import fcntl
import json
import os
import socket
import struct
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40

libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def enter_namespaces():
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET
    if uid != 0:  # mounts and sysctls need capabilities: those of a user namespace of our own
        flags |= CLONE_NEWUSER
    check(libc.unshare(flags), "unshare")
    if uid != 0:
        write("/proc/self/setgroups", "deny")
        write("/proc/self/uid_map", f"{uid} {uid} 1")  # ourselves, so bwrap runs as before
        write("/proc/self/gid_map", f"{gid} {gid} 1")
    # private first: nothing mounted here may propagate to the host's namespace
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def mount_tmpfs(path, size, inodes):
    options = f"mode=1777,size={int(size)},nr_inodes={int(inodes)}"
    check(libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV,
                     options.encode()), f"mount tmpfs on {path}")


def set_up_network(sysctls):
    for name, value in sysctls.items():  # this namespace's own values (net.ipv4.tcp_*mem)
        write("/proc/sys/" + name.replace(".", "/"), value)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # loopback, as bwrap does
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo",
                                                 IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


def prepare(settings):
    if settings.get("cgroup"):
        write(settings["cgroup"], str(os.getpid()))
    if settings.get("namespaces"):
        enter_namespaces()
        for path, size, inodes in settings.get("tmpfs", []):
            mount_tmpfs(path, size, inodes)
        set_up_network(settings.get("sysctl", {}))


def main():
    if sys.argv[1] == "--probe":
        try:
            prepare({"namespaces": True, "tmpfs": [[sys.argv[2], 1 << 20, 16]],
                     "sysctl": {"net.ipv4.tcp_rmem": "4096 131072 212992"}})
        except OSError as e:
            print(f"launcher: {e}", file=sys.stderr)
            sys.exit(1)
        return
    try:
        prepare(json.loads(sys.argv[1]))
    except OSError as e:
        print(f"launcher: {e}", file=sys.stderr)
        sys.exit(127)
    os.execv(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
