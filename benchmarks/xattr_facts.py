"""What this machine says about a record kept as an extended attribute (issue 10).

Printed by ``record_layouts.py`` under its table: which filesystems here take
``user.*`` attributes, whether setting one moves the file's change time (a warm
check of one ``lstat`` relies on it), and which everyday copies keep the
attribute and which drop it (checked by copying, not assumed).

Run alone: ``.venv/bin/python benchmarks/xattr_facts.py [FOLDER]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

XATTR_NAME = "user.resultkit"


def facts(folder: str) -> list[str]:
    """What this machine says about xattrs: support per filesystem, change times, copies."""
    out = []
    seen: set[int] = set()
    for base in (folder, "/dev/shm"):
        if not os.path.isdir(base) or os.stat(base).st_dev in seen:
            continue
        seen.add(os.stat(base).st_dev)
        fs = filesystem_type(base)
        probe = tempfile.mkdtemp(prefix="rk-xattr-", dir=base)
        try:
            path = os.path.join(probe, "f")
            with open(path, "wb") as f:
                f.write(b"x")
            before = os.lstat(path)
            try:
                os.setxattr(path, XATTR_NAME, b"{}")
            except OSError as exc:
                out.append(f"user xattrs on {base} ({fs}): NO ({exc.strerror})")
                continue
            after = os.lstat(path)
            moved = after.st_ctime_ns != before.st_ctime_ns
            out.append(
                f"user xattrs on {base} ({fs}): yes; setting one moves ctime: {moved}, "
                f"mtime: {after.st_mtime_ns != before.st_mtime_ns}"
            )
            out += _copies_keep_xattr(probe, path)
        finally:
            shutil.rmtree(probe, ignore_errors=True)
    return out


def filesystem_type(folder: str) -> str:
    """The type of the filesystem ``folder`` is on (``/proc/self/mountinfo``), or "?"."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "?"
    target, best, found = os.path.realpath(folder), -1, "?"
    for line in lines:
        fields = line.split(" ")
        try:
            mount_point, fs_type = fields[4], fields[fields.index("-", 6) + 1]
        except (IndexError, ValueError):
            continue
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= best:  # the last of equal ones is on top
            best, found = len(mount_point), fs_type
    return found


def _copies_keep_xattr(probe: str, path: str) -> list[str]:
    """Which everyday copies keep the record attribute (checked, not assumed)."""
    copies: dict[str, Callable[[str], None]] = {
        "cp": lambda dst: _run(["cp", path, dst]),
        "cp -a": lambda dst: _run(["cp", "-a", path, dst]),
        "shutil.copy": lambda dst: shutil.copy(path, dst),
        "shutil.copy2": lambda dst: shutil.copy2(path, dst),
        "tar (no --xattrs)": lambda dst: _tar(path, dst, []),
        "tar --xattrs": lambda dst: _tar(path, dst, ["--xattrs", "--xattrs-include=user.*"]),
    }
    if shutil.which("rsync"):
        copies["rsync -a"] = lambda dst: _run(["rsync", "-a", path, dst])
        copies["rsync -aX"] = lambda dst: _run(["rsync", "-aX", path, dst])
    kept, lost = [], []
    for i, (how, copy) in enumerate(copies.items()):
        dst = os.path.join(probe, f"copy{i}")
        try:
            copy(dst)
            has = XATTR_NAME in os.listxattr(dst)
        except (OSError, subprocess.CalledProcessError):
            continue
        (kept if has else lost).append(how)
    return [f"  copies keeping the record: {', '.join(kept)}; losing it: {', '.join(lost)}"]


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _tar(path: str, dst: str, flags: list[str]) -> None:
    archive, out = dst + ".tar", dst + ".d"
    os.makedirs(out)
    folder, name = os.path.split(path)
    _run(["tar", *flags, "-cf", archive, "-C", folder, name])
    _run(["tar", *flags, "-xf", archive, "-C", out])
    os.replace(os.path.join(out, name), dst)


if __name__ == "__main__":
    for line in facts(sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()):
        print(line)
