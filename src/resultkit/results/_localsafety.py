"""Local-disk safety: folders that lead out of the root, and leftovers of dead writers.

The rule for symlinks: a location's folder, with every symlink in it
resolved, must still be inside the root (itself resolved). A symlinked
folder that points elsewhere inside the root is fine; one that points
outside is refused, for reads as for writes. Checked folders are remembered
(a bounded set), so the check costs a ``realpath`` once per folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import threading
import time
from collections import OrderedDict

from ..errors import UnsafeLocationError
from ._location import NAME_MAX, RECORD_SUFFIX, TEMP_MARKER, short

__all__ = [
    "files_under",
    "check_inside",
    "sweep_dead_writers",
    "process_space",
    "is_dead_writer_temp",
    "refuse_long_name",
]

_CHECKED_MAX_BYTES = 4 << 20
_checked: OrderedDict[tuple[str, str], None] = OrderedDict()
_checked_bytes = 0
_checked_lock = threading.Lock()

#: A temp file this old whose writer's process is gone is garbage.
DEAD_WRITER_AGE = 5.0
_SWEEP_EVERY = 60.0
_swept: OrderedDict[str, float] = OrderedDict()


def check_inside(root: str, folder: str) -> bool:
    """Refuse ``folder`` if, with symlinks resolved, it is not inside ``root``.

    Returns whether the folder is remembered as checked (it exists), so a
    caller may remember what it derived from it too.
    """
    global _checked_bytes
    key = (root, folder)
    if key in _checked:
        return True
    real_root = os.path.realpath(root)
    real = os.path.realpath(folder)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise UnsafeLocationError(
            f"location folder {short(folder)!r} leads outside the result's root {short(root)!r} "
            f"(through a symlink, to {short(real)!r}); results never follow links out of "
            "their root. Remove the link or store under another dir.",
            location=folder,
        )
    if not os.path.isdir(folder):
        return False  # not there yet: check again once it exists
    with _checked_lock:
        _checked[key] = None
        _checked_bytes += len(root) + len(folder)
        while _checked_bytes > _CHECKED_MAX_BYTES and _checked:
            (r, f), _ = _checked.popitem(last=False)
            _checked_bytes -= len(r) + len(f)
    return True


def process_space() -> str:
    """Six hex digits naming this machine and PID namespace.

    Temp names carry it (``.NAME.rktmp-PID-SPACE...``): a process id means
    something only in its own namespace, so leftovers of writers in another
    container (or on another machine sharing the folder) are judged by age.
    """
    global _SPACE
    if _SPACE is None:
        try:
            ns = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            ns = ""
        _SPACE = hashlib.sha256(f"{socket.gethostname()}|{ns}".encode()).hexdigest()[:6]
    return _SPACE


_SPACE: str | None = None
#: A temp file of a writer in another PID namespace is garbage after this long.
FOREIGN_WRITER_AGE = 24 * 3600.0


def _writer(name: str) -> tuple[int, str] | None:
    """The pid and process space in a temp file's name, if it has them."""
    tail = name.rpartition(TEMP_MARKER)[2]
    pid, sep, token = tail.partition("-")
    return (int(pid), token[:6]) if sep and pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists in this PID namespace."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_dead_writers(folder: str, now: float | None = None, force: bool = False) -> list[str]:
    """Remove temp files that writers killed mid-write left in ``folder``; return their names.

    A temp file is removed when its writer's process no longer exists (in
    this machine's PID namespace) and it is older than a few seconds; one of
    a writer in another namespace or machine, when it is a day old. Runs at most once a
    minute per folder and process unless ``force``.
    """
    now = time.time() if now is None else now
    if not force:
        last = _swept.get(folder)
        if last is not None and now - last < _SWEEP_EVERY:
            return []
        _swept[folder] = now
        while len(_swept) > 4096:
            _swept.popitem(last=False)
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if TEMP_MARKER not in entry.name:
            continue
        writer = _writer(entry.name)
        if writer is None:
            continue
        pid, space = writer
        if space == process_space():
            if pid == os.getpid() or pid_alive(pid):
                continue
            age = DEAD_WRITER_AGE
        else:  # another machine or container: its pids mean nothing here
            age = FOREIGN_WRITER_AGE
        with contextlib.suppress(OSError):
            if now - entry.stat(follow_symlinks=False).st_mtime >= age:
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def is_dead_writer_temp(name: str, modified: float, now: float | None = None) -> bool:
    """Whether :func:`sweep_dead_writers` would remove the temp file ``name`` now.

    ``modified`` is its modification time (seconds since the epoch). The same
    rule: a writer of this machine and PID namespace whose process is gone,
    after a few seconds; another namespace's, after a day; never this
    process's own. ``resultkit gc --dry-run`` uses it to say what would go.

    Example:
        >>> is_dead_writer_temp(f".x.pkl.rktmp-{os.getpid()}-{process_space()}ab", 0.0)
        False
    """
    if TEMP_MARKER not in name:
        return False
    writer = _writer(name)
    if writer is None:
        return False
    pid, space = writer
    now = time.time() if now is None else now
    if space == process_space():
        if pid == os.getpid() or pid_alive(pid):
            return False
        return now - modified >= DEAD_WRITER_AGE
    return now - modified >= FOREIGN_WRITER_AGE


def refuse_long_name(path: str) -> None:
    """Raise ``ENAMETOOLONG`` when ``path``'s name leaves no room for its record's
    (``NAME.rkmeta``), before anything is created: a write of such a name would fail at
    its record after making its folders, and a marker (which has no record) would be a
    name no other call could use."""
    if len(os.fsencode(os.path.basename(path))) > NAME_MAX - len(RECORD_SUFFIX):
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)


def files_under(base: str) -> list[str]:
    """Every file's path under the folder ``base`` (``base`` itself if it is a file), as
    fsspec's ``find`` lists them (a symlink to a folder is listed, not followed), but a
    folder that cannot be read raises instead of being omitted: a lock's epochs listed
    as none let a second contender take a held lock."""
    if not os.path.isdir(base):
        return [base] if os.path.lexists(base) else []
    found: list[str] = []
    for folder, dirs, files in os.walk(base, onerror=_refuse_unlisted):
        found.extend(os.path.join(folder, name) for name in files)
        found.extend(p for p in (os.path.join(folder, d) for d in dirs) if os.path.islink(p))
    return found


def _refuse_unlisted(exc: OSError) -> None:
    if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):  # not removed meanwhile
        raise exc
