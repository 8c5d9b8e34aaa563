"""Every location a Result touches stays under its root, and names stay unambiguous."""

from __future__ import annotations

import pytest

from resultkit.errors import UnsafeLocationError
from resultkit.results import LocalResult, MemoryResult
from resultkit.results._location import check_relative


@pytest.mark.parametrize(
    "location",
    [
        "a.pkl.RKMETA",
        "b.pkl.rkmeta/x",
        "dir.Rkmeta/sub/v.pkl",
        ".v.pkl.RKTMP-123-abc",
        "line\nbreak.pkl",
        "esc\x1b[31m.pkl",
        "tab\there.pkl",
        "del\x7f.pkl",
    ],
)
def test_reserved_names_and_control_characters_are_refused(tmp_path, location):
    r = LocalResult(dir=tmp_path)
    with pytest.raises(UnsafeLocationError) as info:
        r.write(1, location=location)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "foreign", ["file:///etc/passwd", "memory:///elsewhere/x.pkl", "s3://bucket/x.pkl"]
)
def test_canonical_locations_of_another_root_are_refused(tmp_path, foreign):
    from resultkit.results import FormattedLocation

    r = LocalResult(dir=tmp_path)
    for call in (r.read, r.exists, lambda loc: r.write(1, loc)):
        with pytest.raises(UnsafeLocationError, match="outside this result's root|another"):
            call(FormattedLocation(foreign))


@pytest.mark.parametrize("name", ["add[2].pkl", "star*.pkl", "what?.pkl", "set[ab].pkl"])
def test_memory_locations_with_glob_characters_round_trip(name):
    r = MemoryResult(root="/glob-names")
    written = r.write(name, location=name)
    assert r.exists(name)
    assert r.read(written.location).value == name
    assert name in r.storage.list()


def test_long_locations_are_truncated_in_messages(tmp_path):
    with pytest.raises(UnsafeLocationError) as info:
        LocalResult(dir=tmp_path).write(1, location="../" + "x" * 5000)
    assert len(str(info.value)) < 800


def test_the_cache_of_checked_locations_is_bounded_in_bytes():
    from resultkit.results import _location

    _location._check_relative_cached.cache_clear()
    for i in range(50):
        check_relative(f"{i}/" + "y" * 4000, "root")  # long (not cached), not too long
    assert _location._check_relative_cached.cache_info().currsize == 0
    check_relative("short.pkl", "root")
    assert _location._check_relative_cached.cache_info().currsize == 1
