"""Measuring and removing the folders the sandbox writes in, by descriptor.

Code inside can hide files from a walk by path: a folder it makes unreadable to its owner (mode
0300: writable and searchable, not listable) is skipped with EACCES where the host is not root,
and one nested past PATH_MAX with ENAMETOOLONG. Here each folder is opened relative to its
parent (openat), so path length never matters, and a folder that cannot be opened, or one
nested deeper than MAX_DEPTH (the walk holds a descriptor per level), makes the measure fail
(`Unmeasurable`) rather than come out smaller. `tidy` and `remove` give the owner back rwx on
every folder first, at any depth, so nothing the code wrote is left behind unreadable.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_DEPTH = 64  # folders below a measured one; deeper ones are an attempt to hide, not work
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Unmeasurable(Exception):
    """The walk could not measure everything; the message says why, for the model. `hidden`:
    a folder was unreadable or too deep (`tidy` undoes both), not merely too many entries."""

    def __init__(self, message: str, hidden: bool = True):
        super().__init__(message)
        self.hidden = hidden


def usage(folders: dict[Path, str], max_entries: int | None = None) -> tuple[int, int]:
    """(bytes allocated, entries) under `folders` ({host path: the name the code knows it by})."""
    total = entries = 0
    for folder, shown in folders.items():
        walk = _walk(folder, shown)
        try:
            for info in walk:
                entries += 1
                if max_entries is not None and entries > max_entries:
                    raise Unmeasurable(f"{shown} holds more than {max_entries:,} files and "
                                       "folders", hidden=False)
                total += info.st_blocks * 512
        finally:
            walk.close()
    return total, entries


def _walk(folder: Path, shown: str):
    """The lstat of each entry under `folder`, depth first, one descriptor per level."""
    try:
        fd = os.open(folder, _DIR)
    except FileNotFoundError:
        return
    except OSError as e:
        raise Unmeasurable(f"{shown} cannot be listed ({e.strerror})") from None
    levels: list[tuple[int, str, list[str]]] = []  # (fd, name, subfolders left), top first
    name = shown
    try:
        while True:
            subfolders = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # removed meanwhile
                        continue
                    yield info
                    if stat.S_ISDIR(info.st_mode):
                        subfolders.append(entry.name)
            levels.append((fd, name, subfolders))
            fd = None
            while fd is None:
                parent, _, pending = levels[-1]
                if not pending:
                    os.close(parent)
                    levels.pop()
                    if not levels:
                        return
                    continue
                name = pending.pop()
                if len(levels) > MAX_DEPTH:
                    raise Unmeasurable(f"{_shown_path(levels, name)} is nested more than "
                                       f"{MAX_DEPTH} folders deep")
                try:
                    fd = os.open(name, _DIR, dir_fd=parent)
                except (FileNotFoundError, NotADirectoryError):  # removed or replaced meanwhile
                    continue
                except OSError as e:
                    if e.errno == errno.ELOOP:  # a symlink swapped in: nothing of ours behind it
                        continue
                    raise Unmeasurable(f"{_shown_path(levels, name)} is a folder that cannot be "
                                       f"listed ({e.strerror})") from None
    finally:
        if fd is not None:
            os.close(fd)
        for parent, _, _ in levels:
            os.close(parent)


def _shown_path(levels: list, name: str) -> str:
    path = "/".join([*(level[1] for level in levels), name])
    return path if len(path) <= 120 else f"{path[:70]}...{path[-40:]}"


def tidy(folder: Path, keep_depth: int) -> None:
    """Gives the owner rwx on every folder under `folder`, at any depth, and removes what lies
    more than `keep_depth` levels below it (0: all of its contents). One descriptor at a time,
    climbing back by "..": only while nothing else can move these folders (the sandbox dead)."""
    _open_up(None, folder)
    try:
        fd = os.open(folder, _DIR)
    except OSError:
        return
    levels: list[tuple[str | None, tuple[int, int], list[str]]] = []  # (name, id, subfolders left)
    name = None
    try:
        while True:
            depth = len(levels) + 1  # of the entries of the folder `fd` is open on
            subfolders = []
            try:
                with os.scandir(fd) as it:
                    entries = list(it)
            except OSError:
                entries = []
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        _open_up(fd, entry.name)
                        subfolders.append(entry.name)
                    elif depth > keep_depth:
                        os.unlink(entry.name, dir_fd=fd)
                except OSError:
                    pass
            info = os.fstat(fd)
            levels.append((name, (info.st_dev, info.st_ino), subfolders))
            while True:  # down into the next subfolder left, or back up, removing emptied ones
                pending = levels[-1][2]
                if pending:
                    name = pending.pop()
                    try:
                        child = os.open(name, _DIR, dir_fd=fd)
                    except OSError:
                        continue
                    os.close(fd)
                    fd = child
                    break
                left = levels.pop()[0]
                if not levels:
                    return
                parent = os.open("..", _DIR, dir_fd=fd)
                os.close(fd)
                fd = parent
                info = os.fstat(fd)
                if (info.st_dev, info.st_ino) != levels[-1][1]:
                    return  # moved after all: stop rather than act on another folder
                if len(levels) > keep_depth:
                    try:
                        os.rmdir(left, dir_fd=fd)
                    except OSError:
                        pass
    except OSError:
        pass
    finally:
        os.close(fd)


def remove(folder: Path) -> None:
    """Removes `folder` and everything in it, whatever its modes and depth (see `tidy`)."""
    tidy(folder, 0)
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _open_up(dir_fd: int | None, name) -> None:
    """rwx for the owner on the folder `name`, never through a symlink: the folder is opened
    O_PATH | O_NOFOLLOW and changed through its /proc/self/fd link."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o700 != 0o700:
            os.chmod(f"/proc/self/fd/{fd}", mode | 0o700)
    except OSError:
        pass
    finally:
        os.close(fd)
