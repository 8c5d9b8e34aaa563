"""The contract suite, run in a foreign project (pytester, a subprocess) as a user runs it.

A correct backend passes it; each deliberately broken backend, built on the
public ``Storage`` API, fails it on the tests that check what it breaks, with
a message saying what the backend must do. The project pytester makes has no
configuration: thread exceptions are not turned into errors there, so a
reader thread's error fails the suite only if the suite collects it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

pytest_plugins = ["pytester"]

STORAGES = '''
import threading
import time
import uuid

import pytest

from resultkit.errors import ResultCorruptError
from resultkit.results import Storage, StorageResult
from resultkit.testing import ResultContract

STORES = {}
LOCK = threading.Lock()


class DictStorage(Storage):
    """A correct in-process storage; pickles by name (copies share the store)."""

    def __init__(self, name=None):
        self.name = name or uuid.uuid4().hex
        self.objects = STORES.setdefault(self.name, {})
        self.root_url = f"dict://{self.name}"

    def __reduce__(self):
        return type(self), (self.name,)

    def put(self, key, data, metadata):
        self.objects[key] = (bytes(data), dict(metadata))

    def get(self, key):
        return self.objects.get(key)

    def head(self, key):
        found = self.objects.get(key)
        return None if found is None else found[1]

    def delete(self, key):
        return self.objects.pop(key, None) is not None

    def list(self, prefix=""):
        return [k for k in list(self.objects) if k.startswith(prefix)]

    def put_if_absent(self, key, data, metadata):
        with LOCK:
            if key in self.objects:
                return False
            self.put(key, data, metadata)
            return True


class StaleGet(DictStorage):
    """get answers from a cache that put and delete never invalidate."""

    def __init__(self, name=None):
        super().__init__(name)
        self.cache = {}

    def get(self, key):
        found = self.cache.get(key) or super().get(key)
        if found is not None:
            self.cache[key] = found
        return found


class NonAtomicPut(DictStorage):
    """put publishes the pair first and fills the bytes in place (Prefect 1's "wb")."""

    def put(self, key, data, metadata):
        buf = bytearray()
        self.objects[key] = (buf, dict(metadata))
        view = memoryview(data)
        for i in range(0, len(view), 1 << 16):
            buf += view[i : i + (1 << 16)]
            time.sleep(0)  # let a reader in


class FalseCorruption(DictStorage):
    """get raises a false 'corrupt' to any reader while a put is in progress."""

    writing = 0
    counting = threading.Lock()

    def put(self, key, data, metadata):
        with self.counting:
            FalseCorruption.writing += 1
        try:
            time.sleep(0.002)  # a slow publish
            super().put(key, data, metadata)
        finally:
            with self.counting:
                FalseCorruption.writing -= 1

    def get(self, key):
        if FalseCorruption.writing:
            raise ResultCorruptError(f"{key} does not match its integrity record")
        return super().get(key)


class TwoWinners(DictStorage):
    """put_if_absent checks, then creates: two callers can both win."""

    def put_if_absent(self, key, data, metadata):
        if key in self.objects:
            return False
        time.sleep(0.001)
        self.put(key, data, metadata)
        return True


class DeleteLeavesValue(DictStorage):
    """delete reports success and leaves the pair."""

    def delete(self, key):
        return key in self.objects


class ExistsManyOneFolder(DictStorage):
    """exists_many answers every key from the listing of the first key's folder."""

    def exists_many(self, keys):
        folder = keys[0].rpartition("/")[0] if keys else ""
        listed = {k for k in self.objects if k.rpartition("/")[0] == folder}
        return [k in listed for k in keys]


class ExistsManyReordered(DictStorage):
    """exists_many answers for the keys in sorted order, not the order asked."""

    def exists_many(self, keys):
        return [k in self.objects for k in sorted(keys)]


class NoCreate(DictStorage):
    """A correct storage without an atomic create."""

    put_if_absent = Storage.put_if_absent


class WriteOnce(DictStorage):
    """A correct write-once store: it refuses delete."""

    def delete(self, key):
        raise PermissionError("this store never deletes")


def contract_for(storage_class):
    class Contract(ResultContract):
        large_size = 2**20
        persists_across_processes = False  # one store per process

        @pytest.fixture
        def result(self):
            return StorageResult(storage_class())

    return Contract


class TestCorrect(contract_for(DictStorage)):
    pass


class TestNoCreateDeclared(contract_for(NoCreate)):
    supports_put_if_absent = False


class TestNoCreateUndeclared(contract_for(NoCreate)):
    pass


class TestWriteOnceDeclared(contract_for(WriteOnce)):
    supports_delete = False


class TestStaleGet(contract_for(StaleGet)):
    pass


class TestNonAtomicPut(contract_for(NonAtomicPut)):
    pass


class TestFalseCorruption(contract_for(FalseCorruption)):
    pass


class TestTwoWinners(contract_for(TwoWinners)):
    pass


class TestDeleteLeavesValue(contract_for(DeleteLeavesValue)):
    pass


class TestExistsManyOneFolder(contract_for(ExistsManyOneFolder)):
    pass


class TestExistsManyReordered(contract_for(ExistsManyReordered)):
    pass
'''

_PUT_IF_ABSENT_UNDECLARED = "NoCreate has no atomic create (put_if_absent)"
_ATOMIC = "put must replace the payload and its metadata as one unit"
_GONE = "after delete, get must return None (the pair gone, not cached)"

#: For each test class of STORAGES: every test that must fail, and what its failure must say.
#: No other test of the class may fail.
EXPECTED: dict[str, dict[str, str]] = {
    "TestCorrect": {},
    "TestNoCreateDeclared": {},
    "TestWriteOnceDeclared": {},
    "TestNoCreateUndeclared": {
        "test_declared_capabilities_match_the_storage": "set the class attribute to False",
        "test_put_if_absent_exactly_one_winner": _PUT_IF_ABSENT_UNDECLARED,
        "test_put_if_absent_second_call_returns_false": _PUT_IF_ABSENT_UNDECLARED,
        "test_put_if_absent_refuses_a_written_value": _PUT_IF_ABSENT_UNDECLARED,
        "test_put_if_absent_after_delete": _PUT_IF_ABSENT_UNDECLARED,
    },
    "TestStaleGet": {
        "test_overwrite_replaces_value": "get must return the latest one",
        "test_read_after_delete_is_not_found": "after delete, get must return None",
        "test_corrupted_payload_detected": _GONE,
        "test_same_size_substitution_detected": _GONE,
        "test_truncated_payload_detected": _GONE,
        "test_missing_record_is_corrupt_not_a_value": _GONE,
        "test_damaged_record_is_corrupt": _GONE,
    },
    "TestNonAtomicPut": {
        "test_reader_never_sees_partial_value": _ATOMIC + ": a concurrent reader must get the "
        "old value or the new one, never a partial value, a missing key or an error; the "
        "reader got ['ResultCorruptError: the payload at",
    },
    "TestFalseCorruption": {
        "test_reader_never_sees_partial_value": _ATOMIC + ": a concurrent reader must get the "
        "old value or the new one, never a partial value, a missing key or an error; the "
        "reader got ['ResultCorruptError: big.pkl does not match",
    },
    "TestTwoWinners": {
        "test_put_if_absent_exactly_one_winner": "put_if_absent must be one atomic "
        "check-and-create: of concurrent callers exactly one must get True",
    },
    "TestDeleteLeavesValue": {
        "test_delete_returns_true_then_false": "delete must return True when it removed a pair "
        "and False when nothing was there; got True then True",
        "test_read_after_delete_is_not_found": "after delete, get must return None",
        "test_delete_leaves_neighbours": "list must show the neighbours only",
        "test_delete_never_expands_glob_characters": "after delete, exists must be False",
        "test_exists_many_sees_deletes_and_new_writes": "exists_many must see every delete",
        "test_put_if_absent_after_delete": "after delete, put_if_absent must create the key",
        # the suite damages a pair by deleting it and putting another (see RawAccess.raw_write)
        "test_corrupted_payload_detected": _GONE,
        "test_same_size_substitution_detected": _GONE,
        "test_truncated_payload_detected": _GONE,
        "test_missing_record_is_corrupt_not_a_value": _GONE,
        "test_damaged_record_is_corrupt": _GONE,
    },
    "TestExistsManyOneFolder": {
        "test_exists_many_across_folders": "exists_many must answer each key across folders",
    },
    "TestExistsManyReordered": {
        "test_exists_many_in_one_folder": "exists_many must answer each key, in order",
        "test_exists_many_across_folders": "exists_many must answer each key across folders",
    },
}

_RUN: dict[str, Any] = {}


def _contract_run(pytester: pytest.Pytester) -> dict[str, Any]:
    """Run every backend of STORAGES once (one subprocess), shared by the tests below."""
    if not _RUN:
        pytester.makeini("[pytest]\n")  # no filterwarnings: thread errors stay warnings
        pytester.makepyfile(test_storages=STORAGES)
        out = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=report.xml")
        failed: dict[str, dict[str, str]] = {name: {} for name in EXPECTED}
        collected: dict[str, set[str]] = {name: set() for name in EXPECTED}
        for case in ET.parse(pytester.path / "report.xml").getroot().iter("testcase"):
            cls = case.get("classname", "").rpartition(".")[2]
            test = re.sub(r"\[.*\]$", "", case.get("name", ""))
            collected.setdefault(cls, set()).add(test)
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            assert case.find("skipped") is None, f"{cls}::{test} was skipped"
            if problem is not None:
                text = (problem.get("message") or "") + (problem.text or "")
                failed.setdefault(cls, {})[test] = text
        _RUN.update(out=out, failed=failed, collected=collected)
    return _RUN


@pytest.mark.parametrize("backend", sorted(EXPECTED))
def test_suite_fails_a_broken_backend_where_expected(pytester, backend):
    run = _contract_run(pytester)
    expected = EXPECTED[backend]
    failed = run["failed"][backend]
    assert len(run["collected"][backend]) > 50, (
        f"the suite did not run on {backend}:\n{run['out'].stdout.str()[-5000:]}"
    )
    missing = sorted(set(expected) - set(failed))
    assert not missing, f"{backend}: {missing} must fail too; failed: {sorted(failed)}"
    unexpected = sorted(set(failed) - set(expected))
    assert not unexpected, f"{backend}: unexpected failures {unexpected}:\n" + "\n".join(
        failed[t][:3000] for t in unexpected
    )
    for test, says in expected.items():
        assert says in failed[test], (
            f"{backend}::{test} must fail saying what the backend must do ({says!r}); it "
            f"said:\n{failed[test][:3000]}"
        )


def test_capability_flags_choose_what_is_collected(pytester):
    run = _contract_run(pytester)
    declared, undeclared = run["collected"]["TestNoCreateDeclared"], run["collected"]["TestCorrect"]
    assert "test_put_if_absent_refused_clearly" in declared
    assert not {t for t in declared if t.startswith("test_put_if_absent_") and "refused" not in t}
    assert "test_put_if_absent_refused_clearly" not in undeclared
    assert "test_put_if_absent_exactly_one_winner" in undeclared
    assert "test_values_cross_processes" not in declared | undeclared
    write_once = run["collected"]["TestWriteOnceDeclared"]
    assert "test_delete_refused_keeps_the_value" in write_once
    assert not {t for t in write_once if "delete" in t and "refused" not in t}
    run["out"].stdout.fnmatch_lines(
        [
            "resultkit contract: TestNoCreateDeclared does not collect *"
            "test_put_if_absent_exactly_one_winner (supports_put_if_absent = False)*"
        ]
    )


def test_rewritten_asserts_show_the_values(pytester):
    run = _contract_run(pytester)
    failure = run["failed"]["TestStaleGet"]["test_overwrite_replaces_value"]
    assert "assert ('first', 'first') == ('first', 'second')" in failure, failure


def test_unknown_capability_flag_is_an_error(pytester):
    pytester.makepyfile(
        test_typo="""
        from resultkit.testing import ResultContract

        class TestTypo(ResultContract):
            supports_put_if_absnet = False
        """
    )
    out = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    out.stdout.fnmatch_lines(["*supports_put_if_absnet is not a capability flag*"])
    assert out.ret != 0


def test_contract_runs_in_a_foreign_project(pytester):
    pytester.makepyfile(
        test_mine="""
        import pytest
        from resultkit.results import MemoryResult
        from resultkit.testing import ResultContract
        import uuid

        class TestMine(ResultContract):
            large_size = 2**20
            persists_across_processes = False

            @pytest.fixture
            def result(self):
                return MemoryResult(root=f"/third-party-{uuid.uuid4().hex}")
        """
    )
    out = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    outcomes = out.parseoutcomes()
    assert outcomes["passed"] >= 90 and set(outcomes) == {"passed"}, outcomes
