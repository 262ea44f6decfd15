"""The sandbox's seccomp filter: the system calls a notebook never needs, denied.

libseccomp (Debian's libseccomp2, a dependency of apt itself, so on every Debian-like system)
compiles the rules into BPF for this architecture, with its checks against other ABIs (32-bit
and x32 calls are killed); bwrap loads the result (`--seccomp FD`) right before it starts the
worker. Bound through ctypes: five functions, no extra Python package.

Everything not listed stays allowed: the filter closes the kernel's most exposed doors (keys,
namespaces, mounts, tracing, BPF, io_uring, modules) rather than defining what Python may do.
Sockets are the exception: only the families a notebook uses can be created (netlink, packet,
vsock and the rest reach kernel code or a hypervisor a notebook has no use for), and their
buffers keep the system's default size, so each socket can hold a known, small amount of kernel
memory (the watchdog charges it; see limits.py).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import tempfile

DENIED = (
    # the host's kernel keyrings (a new session keyring alone still reaches the user keyring)
    "keyctl", "add_key", "request_key",
    # namespaces: no nested user namespace, no joining another (clone flags handled below)
    "unshare", "setns",
    # the mount table
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    # other processes' memory and the kernel's tracing and BPF machinery
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "bpf",
    "perf_event_open", "userfaultfd",
    # io_uring bypasses this filter for the operations it performs
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    # the kernel itself, the clock, the machine
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "uselib", "iopl", "ioperm",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "vhangup",
    "open_by_handle_at", "name_to_handle_at", "fanotify_init", "lookup_dcookie",
    # System V memory that outlives every process (no process's memory shows it)
    "shmget", "msgget",
)
# socket(2) and socketpair(2) families allowed: AF_UNIX, AF_INET, AF_INET6
SOCKET_FAMILIES = (1, 2, 10)
# setsockopt(SOL_SOCKET, SO_SNDBUF / SO_RCVBUF): raising a buffer to net.core.wmem_max (often
# megabytes) would let every socket park that much unseen kernel memory
SOL_SOCKET, BUFFER_OPTIONS = 1, (7, 8)
NAMESPACE_FLAGS = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000,
                   "CLONE_NEWUTS": 0x04000000, "CLONE_NEWIPC": 0x08000000,
                   "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
                   "CLONE_NEWNET": 0x40000000}

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ = 4, 6, 7


def SCMP_ACT_ERRNO(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class SeccompUnavailable(RuntimeError):
    pass


def _library():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise SeccompUnavailable(f"libseccomp not found ({e}); install it "
                                 "(apt-get install libseccomp2)") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def build_filter() -> tuple[bytes, list[str]]:
    """(the BPF program for bwrap, the listed names this libseccomp does not know)."""
    lib = _library()
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    unknown: list[str] = []
    try:
        def rule(action: int, name: str, *cmps: _ArgCmp) -> None:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == -1:  # __NR_SCMP_ERROR: newer than this libseccomp
                unknown.append(name)
                return
            array = (_ArgCmp * len(cmps))(*cmps) if cmps else None
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array)
            if rc < 0:
                raise SeccompUnavailable(f"seccomp rule for {name}: {os.strerror(-rc)}")

        for name in DENIED:
            rule(SCMP_ACT_ERRNO(errno.EPERM), name)
        for flag in NAMESPACE_FLAGS.values():  # clone(flags, ...): flags is argument 0
            rule(SCMP_ACT_ERRNO(errno.EPERM), "clone", _ArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag))
        # clone3 passes its flags in memory, out of a filter's sight: "not implemented" makes
        # glibc fall back to clone, whose flags the rules above see.
        rule(SCMP_ACT_ERRNO(errno.ENOSYS), "clone3")
        # Families outside the allow-list get "not supported", as from a kernel without them.
        # The comparison is on all 64 bits: a family with high bits set is above the list too.
        for name in ("socket", "socketpair"):
            for family in range(max(SOCKET_FAMILIES)):
                if family not in SOCKET_FAMILIES:
                    rule(SCMP_ACT_ERRNO(errno.EAFNOSUPPORT), name,
                         _ArgCmp(0, SCMP_CMP_EQ, family, 0))
            rule(SCMP_ACT_ERRNO(errno.EAFNOSUPPORT), name,
                 _ArgCmp(0, SCMP_CMP_GT, max(SOCKET_FAMILIES), 0))
        # A buffer size request succeeds and changes nothing, as if net.core.wmem_max and
        # rmem_max were their defaults (the kernel clamps requests silently to those anyway).
        # Level and name are ints: the kernel ignores their high 32 bits, and so do the rules.
        for option in BUFFER_OPTIONS:
            rule(SCMP_ACT_ERRNO(0), "setsockopt",
                 _ArgCmp(1, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, SOL_SOCKET),
                 _ArgCmp(2, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, option))
        with tempfile.TemporaryFile() as f:
            rc = lib.seccomp_export_bpf(ctx, f.fileno())
            if rc < 0:
                raise SeccompUnavailable(f"seccomp_export_bpf: {os.strerror(-rc)}")
            f.seek(0)
            return f.read(), unknown
    finally:
        lib.seccomp_release(ctx)


_cached: bytes | None = None


def filter_program() -> bytes:
    """The compiled filter, built once per process."""
    global _cached
    if _cached is None:
        _cached = build_filter()[0]
    return _cached


def filter_fd() -> int:
    """A readable descriptor holding the filter, for `bwrap --seccomp FD` (caller closes it)."""
    read, write = os.pipe()
    program = filter_program()
    if len(program) > 65536:  # a pipe holds 64 KiB without a reader
        raise SeccompUnavailable("seccomp filter too large for a pipe")
    os.write(write, program)
    os.close(write)
    return read
