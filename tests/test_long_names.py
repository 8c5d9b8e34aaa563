"""Local names up to the longest a filesystem takes beside its record (248 bytes on a
255-byte filesystem) are written, overwritten and read; longer ones fail naming why.

Before, a name of 219 bytes or more failed: its temporary files' names (``.NAME``,
the record suffix, the marker and the writer's token) went past 255 bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from resultkit.errors import StorageError
from resultkit.results import LocalResult
from resultkit.results._localsafety import sweep_dead_writers
from resultkit.results._location import _TEMP_STEM_BYTES, temp_stem


def _name(size: int, char: str = "a") -> str:
    """A name of exactly ``size`` bytes (UTF-8) ending in .pkl."""
    stem = char * ((size - 4) // len(char.encode()))
    return stem + "a" * (size - 4 - len(stem.encode())) + ".pkl"


@pytest.mark.parametrize("size", [218, 219, 230, 248])
def test_long_names_write_overwrite_read_and_leave_nothing_else(tmp_path, size):
    r = LocalResult(dir=str(tmp_path))
    name = _name(size)
    assert len(name.encode()) == size
    r.write({"v": 1}, location=name)
    r.write({"v": 2}, location=name)  # the overwrite (spares swapped in)
    big = b"x" * (5 << 20)  # streamed: a temp file, then a rename
    r.write(big, location="sub/" + name)
    assert r.read(name).value == {"v": 2}
    assert r.read("sub/" + name).value == big
    assert r.exists(name)
    assert r.storage.put_if_absent("m/" + name, b"marker", {})
    assert not r.storage.put_if_absent("m/" + name, b"other", {})
    assert (tmp_path / "m" / name).read_bytes() == b"marker"
    visible = {p.name for p in tmp_path.iterdir() if ".rkspare" not in p.name}
    assert visible == {name, name + ".rkmeta", "sub", "m"}
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [name, name + ".rkmeta"]


def test_multibyte_names_up_to_248_bytes(tmp_path):
    r = LocalResult(dir=str(tmp_path))
    name = _name(248, "é")  # two bytes a character: the cut keeps whole characters
    r.write([1, 2], location=name)
    r.write([3], location=name)
    assert r.read(name).value == [3]


@pytest.mark.parametrize("size", [249, 255, 300])
def test_too_long_a_name_is_an_error_naming_the_limit_and_leaves_nothing(tmp_path, size):
    r = LocalResult(dir=str(tmp_path))
    name = _name(size)
    calls = (
        lambda: r.write(1, location=name),
        lambda: r.write(1, location="sub/" + name),  # refused before its folder is made
        lambda: r.read(name),
        lambda: r.put_if_absent(b"marker", location="m/" + name),  # no record, same limit
    )
    for call in calls:
        with pytest.raises(StorageError) as info:
            call()
        message = str(info.value)
        assert "too long" in message and f"{size} bytes" in message
        assert "at most 248 bytes" in message and "shorter location" in message
    if size > 255:  # the filesystem refuses the name itself: exists says why too
        with pytest.raises(StorageError, match="too long"):
            r.exists(name)
    else:  # a name no write can use (its record's can't be made) holds nothing
        assert r.exists(name) is False
    assert [p.name for p in tmp_path.iterdir()] == [], "no file, no folder made"


def test_temp_stem_is_short_stable_and_tells_long_names_apart():
    assert temp_stem("a.pkl") == "a.pkl"
    one, two = "x" * 240 + "1", "x" * 240 + "2"
    assert temp_stem(one) == temp_stem(one)
    assert temp_stem(one) != temp_stem(two)
    for name in (one, "é" * 124, "\U0001f600" * 62):
        stem = temp_stem(name)
        assert len(stem.encode()) <= _TEMP_STEM_BYTES
        assert name.startswith(stem.rpartition("~")[0])  # whole characters of its start


def test_a_dead_writers_temp_of_a_long_name_is_swept(tmp_path):
    """A writer killed mid-write leaves a temp file named by its shortened stem; the
    next writer of the folder removes it as it removes any dead writer's."""
    name = _name(240)
    child = (
        "import os, sys\n"
        "from resultkit.results import LocalResult\n"
        "r = LocalResult(dir=sys.argv[1])\n"
        "tmp = r.storage._temp_names(r.storage.path(sys.argv[2]))[0]\n"
        "open(tmp, 'wb').write(b'half')\n"
        "print(os.path.basename(tmp))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path), name],
        capture_output=True,
        text=True,
        check=True,
    )
    left = out.stdout.strip()
    assert (tmp_path / left).exists() and len(left.encode()) <= 255
    removed = sweep_dead_writers(str(tmp_path), now=time.time() + 60, force=True)
    assert removed == [left]
    assert os.listdir(tmp_path) == []


REFUSED_CHILD = """
import json, sys
from resultkit.errors import StorageAccessError
from resultkit.results import LocalResult
r = LocalResult(dir=sys.argv[1])
out = {}
for name, call in [
    ("exists", lambda: r.exists("b/1.pkl")),
    ("exists_many", lambda: r.exists_many(["a/1.pkl", "b/1.pkl"])),
    ("exists_many_20", lambda: r.exists_many([f"b/{i}.pkl" for i in range(20)])),
]:
    try:
        out[name] = repr(call())
    except StorageAccessError as exc:
        out[name] = "denied: " + str(exc)
print(json.dumps(out))
"""


def test_a_folder_that_cannot_be_read_is_an_error_not_a_miss(tmp_path):
    """exists / exists_many of a key in a folder the process may not read raise
    StorageAccessError naming that key, as read does (they answered False: a target
    there read as missing). Run without root's permission override."""
    r = LocalResult(dir=str(tmp_path))
    r.write(1, location="a/1.pkl")
    r.write(1, location="b/1.pkl")
    os.chmod(tmp_path / "b", 0)
    try:
        command = [sys.executable, "-c", REFUSED_CHILD, str(tmp_path)]
        if os.geteuid() == 0:  # root reads any folder: drop the capabilities that let it
            caps = "-dac_override,-dac_read_search"
            command = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    finally:
        os.chmod(tmp_path / "b", 0o755)
    import json

    answers = json.loads(out.stdout)
    for name in ("exists", "exists_many", "exists_many_20"):
        assert answers[name].startswith("denied: "), (name, answers[name])
        assert "b/" in answers[name] and "a/1.pkl" not in answers[name], answers[name]
