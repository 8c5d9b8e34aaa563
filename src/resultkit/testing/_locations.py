"""Contract tests: exists, location templates, and locations that would leave the root."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from ..errors import (
    MissingTemplateKeyError,
    ResultError,
    TemplateError,
    UnsafeLocationError,
)
from ..results import Result
from ._support import RawAccess, expect_error, location_of

__all__ = ["LocationTests"]

_UNSAFE = [
    "../escape.pkl",
    "a/../../escape.pkl",
    "/etc/passwd",
    "\\\\server\\share",
    "C:/x.pkl",
    "c:\\x.pkl",
    "nul\x00byte.pkl",
    "",
    "folder/",
    "..",
    "x.pkl.rkmeta",
]


class LocationTests(RawAccess):
    # == exists ================================================================
    def test_exists_false_before_write(self, result: Result) -> None:
        got = result.exists("never-written.pkl")
        assert got is False, f"exists must be False for a key never written; got {got!r}"

    def test_exists_true_after_write(self, result: Result) -> None:
        result.write(1, location="a/b.pkl")
        got = result.exists("a/b.pkl")
        assert got is True, f"exists (head) must be True once a key is written; got {got!r}"

    def test_exists_is_per_key(self, result: Result) -> None:
        result.write(1, location="k1.pkl")
        assert result.exists("k2.pkl") is False, "exists must answer for the exact key only"

    def test_exists_false_for_a_folder_prefix(self, result: Result) -> None:
        result.write(1, location="folder/inner.pkl")
        assert result.exists("folder") is False, (
            "exists must be False for a prefix of stored keys (a folder is not a value)"
        )

    def test_exists_with_template_keys(self, result: Result) -> None:
        r = result.copy()
        r.location = "{flow}/{n}.pkl"
        r.write(1, flow="f", n=3)
        assert r.exists(flow="f", n=3) and not r.exists(flow="f", n=4), (
            "exists must format the location with the template keys it is given"
        )

    def test_exists_with_canonical_location(self, result: Result) -> None:
        written = result.write(1, location="c.pkl")
        assert result.exists(written.location), (
            f"exists must accept the canonical URL write returned ({written.location})"
        )

    # == templating ============================================================
    def test_template_keywords_in_write(self, result: Result) -> None:
        written = result.write(1, location="k/{x}/{y}.pkl", x="a", y=2)
        assert location_of(written).endswith("k/a/2.pkl"), (
            f"template keys must be substituted: {written.location}"
        )

    def test_template_date_format_spec(self, result: Result) -> None:
        r = result.copy()
        r.location = "{date:%A}/{task_name}.txt"
        written = r.write(1, date=dt.datetime(2026, 11, 23), task_name="t")
        assert location_of(written).endswith("Monday/t.txt"), (
            f"format specs must apply ({{date:%A}} of 2026-11-23 is Monday): {written.location}"
        )

    def test_callable_location(self, result: Result) -> None:
        r = result.copy()
        r.location = lambda **kw: f"call/{kw['n'] * 2}.pkl"
        written = r.write("c", n=21)
        assert location_of(written).endswith("call/42.pkl"), (
            f"a callable location must be called with the template keys: {written.location}"
        )
        assert r.read(n=21).value == "c", "read must call a callable location with its keys"

    def test_format_returns_formatted_copy(self, result: Result) -> None:
        r = result.copy()
        r.location = "{a}-{b}.pkl"
        f = r.format(a=1, b=2)
        assert location_of(f).endswith("1-2.pkl") and r.location == "{a}-{b}.pkl", (
            f"format must return a formatted copy and leave the template: {f.location!r}"
        )
        assert f.write("v").location == f.location, "a formatted copy must write where it says"

    def test_location_formatted_exactly_once(self, result: Result) -> None:
        written = result.write(1, location="once/{x}.pkl", x="{not_a_key}")
        assert location_of(written).endswith("once/{not_a_key}.pkl"), (
            f"a substituted value must not be formatted again: {written.location}"
        )
        assert result.read(written.location).value == 1 and result.exists(written.location), (
            "a location containing braces must be read and checked as written"
        )

    def test_missing_key_names_key_and_given_keys(self, result: Result) -> None:
        must = "a missing template key must raise MissingTemplateKeyError"
        with expect_error(MissingTemplateKeyError, must) as info:
            result.write(1, location="{task_name}/{day}.pkl", task_name="t")
        msg = str(info.value)
        assert "'day'" in msg and "task_name" in msg, (
            f"the error must name the missing key and the keys given: {msg}"
        )
        assert (info.value.key, info.value.given) == ("day", ["task_name"]), (
            f"the error must carry key='day' and given=['task_name']: "
            f"{info.value.key!r}, {info.value.given!r}"
        )

    def test_positional_field_is_a_template_error(self, result: Result) -> None:
        with expect_error(TemplateError, "'{}' in a template must raise TemplateError") as info:
            result.write(1, location="{}.pkl")
        assert "positional" in str(info.value), f"the error must say why: {info.value}"

    def test_escaped_braces_are_literal(self, result: Result) -> None:
        written = result.write(1, location="lit/{{x}}-{y}.pkl", y=1)
        assert location_of(written).endswith("lit/{x}-1.pkl"), (
            f"'{{{{' in a template must be a literal brace: {written.location}"
        )

    # == unsafe locations ======================================================
    @pytest.mark.parametrize("location", _UNSAFE)
    def test_unsafe_locations_refused(self, result: Result, location: str) -> None:
        must = f"a location like {location!r} must be refused with UnsafeLocationError"
        with expect_error(UnsafeLocationError, must):
            result.write(1, location=location)
        with expect_error(UnsafeLocationError, must + " by exists too"):
            result.exists(location)
        stored = self.raw_list(result)
        assert stored == [], f"a refused location must store nothing; the storage has {stored}"

    def test_unsafe_value_substituted_into_template(self, result: Result) -> None:
        must = "a substituted value that leaves the root must be refused"
        with expect_error(UnsafeLocationError, must) as info:
            result.write(1, location="safe/{name}.pkl", name="../../../etc/passwd")
        assert ".." in str(info.value), f"the error must show the offending part: {info.value}"
        stored = self.raw_list(result)
        assert stored == [], f"a refused location must store nothing; the storage has {stored}"

    def test_url_of_other_storage_refused(self, result: Result) -> None:
        must = "a URL of another storage must be refused with UnsafeLocationError"
        with expect_error(UnsafeLocationError, must):
            result.read("ftp://elsewhere/x.pkl")

    def test_canonical_url_outside_root_refused(self, result: Result) -> None:
        written = result.write(1, location="inside.pkl")
        proto, path = location_of(written).split("://", 1)
        root = path[: -len("inside.pkl")].rstrip("/")
        must = "Storage.key_of must return None for a URL outside the root (then it is refused)"
        if not root:  # the root is the whole filesystem: only '..' leaves it
            with expect_error(UnsafeLocationError, must):
                result.read(f"{proto}://../elsewhere.pkl")
            return
        # A sibling folder whose name starts with the root's name is still outside.
        parent = root.rsplit("/", 1)[0] + "/" if "/" in root else ""
        for outside in (
            f"{proto}://{root}-other/x.pkl",
            f"{proto}://{parent}elsewhere-{uuid.uuid4().hex}.pkl",
        ):
            with expect_error(UnsafeLocationError, f"{must}: {outside}") as info:
                result.read(outside)
            assert "outside" in str(info.value), f"the error must say 'outside': {info.value}"

    def test_errors_share_one_hierarchy(self, result: Result) -> None:
        for what, call in (
            ("reading a missing key", lambda: result.read("nope.pkl")),
            ("an unsafe location", lambda: result.write(1, location="../x")),
            ("a missing template key", lambda: result.write(1, location="{missing}")),
        ):
            with expect_error(ResultError, f"{what} must raise a resultkit ResultError"):
                call()
