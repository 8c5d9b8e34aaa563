"""Contract tests: delete, exists_many, put_if_absent, list and stat."""

from __future__ import annotations

import threading

from ..errors import ResultNotFoundError, StorageError, UnsafeLocationError
from ..results import StorageResult
from ._support import RawAccess, Workers, applies_when, expect_error, location_of

__all__ = ["OperationTests"]


class OperationTests(RawAccess):
    supports_put_if_absent: bool
    supports_delete: bool
    race_rounds: int

    def test_declared_capabilities_match_the_storage(self, result: StorageResult) -> None:
        storage = self.storage_of(result)
        declared, actual = self.supports_put_if_absent, storage.supports_put_if_absent
        assert declared == actual, (
            f"the test class declares supports_put_if_absent = {declared} but "
            f"{type(storage).__name__}.supports_put_if_absent is {actual}: set the class "
            f"attribute to {actual} so the suite tests what the storage does"
        )

    # == delete ================================================================
    @applies_when(supports_delete=True)
    def test_delete_returns_true_then_false(self, result: StorageResult) -> None:
        result.write("gone", location="del/k.pkl")
        first, second = result.delete("del/k.pkl"), result.delete("del/k.pkl")
        assert (first, second) == (True, False), (
            "delete must return True when it removed a pair and False when nothing was "
            f"there; got {first!r} then {second!r}"
        )
        never = result.delete("del/never-written.pkl")
        assert never is False, f"delete of a key never written must return False; got {never!r}"

    @applies_when(supports_delete=True)
    def test_read_after_delete_is_not_found(self, result: StorageResult) -> None:
        written = result.write("gone", location="del/r.pkl")
        assert result.read(written.location).value == "gone", "read must return the value"
        assert result.delete(written.location), "delete must return True for a stored key"
        must = "after delete, get must return None (read raises ResultNotFoundError)"
        with expect_error(ResultNotFoundError, must):
            result.read(written.location)
        assert result.exists(written.location) is False, "after delete, exists must be False"
        assert result.stat(written.location) is None, "after delete, head must return None"
        keys = self.raw_list(result)
        assert keys == [], f"after delete, list must not return the key; got {keys}"

    @applies_when(supports_delete=True)
    def test_delete_leaves_neighbours(self, result: StorageResult) -> None:
        neighbours = ["n/k.pkl2", "n/k", "n/k.pkl.d/inner.pkl", "n/sub/k.pkl", "k.pkl", "n2/k.pkl"]
        for location in ["n/k.pkl", *neighbours]:
            result.write(location, location=location)
        assert result.delete("n/k.pkl"), "delete must return True for a stored key"
        back = {loc: result.read(loc).value for loc in neighbours}
        assert back == {loc: loc for loc in neighbours}, (
            f"delete must remove only its own key; its neighbours now read {back}"
        )
        keys = self.raw_list(result)
        assert keys == sorted(neighbours), f"list must show the neighbours only; got {keys}"

    @applies_when(supports_delete=True)
    def test_delete_never_expands_glob_characters(self, result: StorageResult) -> None:
        names = ["g/a*", "g/ab", "g/a?", "g/a[b]", "g/x[y]", "g/xy"]
        for location in names:
            result.write(location, location=location)
        assert result.delete("g/a*") and result.delete("g/x[y]"), (
            "delete must return True for a stored key whose name holds * ? ["
        )
        left = {loc: result.read(loc).value for loc in ("g/ab", "g/a?", "g/a[b]", "g/xy")}
        assert left == {loc: loc for loc in left}, (
            "delete must remove exactly the named key, never treat * ? [ as a pattern; "
            f"the others now read {left}"
        )
        gone = (result.exists("g/a*"), result.exists("g/x[y]"))
        assert gone == (False, False), (
            f"after delete, exists must be False for the deleted keys; got {gone}"
        )

    @applies_when(supports_delete=True)
    def test_write_after_delete(self, result: StorageResult) -> None:
        result.write("first", location="del/again.pkl")
        result.delete("del/again.pkl")
        result.write("second", location="del/again.pkl")
        back = result.read("del/again.pkl").value
        assert back == "second", f"a key must be writable again after delete; read {back!r}"

    @applies_when(supports_delete=False)
    def test_delete_refused_keeps_the_value(self, result: StorageResult) -> None:
        result.write("kept", location="del/kept.pkl")
        must = "a storage without delete must refuse it with an error (supports_delete = False)"
        with expect_error(StorageError, must):
            result.delete("del/kept.pkl")
        assert result.read("del/kept.pkl").value == "kept", "a refused delete must keep the value"

    # == exists_many ===========================================================
    def test_exists_many_in_one_folder(self, result: StorageResult) -> None:
        for name in ("0", "2", "4", "10"):
            result.write(name, location=f"m/{name}.pkl")
        query = [f"m/{n}.pkl" for n in ("0", "1", "2", "3", "4", "10", "1")]
        expected = [True, False, True, False, True, True, False]
        got = result.exists_many(query)
        assert got == expected, (
            f"exists_many must answer each key, in order; for {query} expected {expected}, "
            f"got {got}"
        )
        got = result.exists_many(query[::-1])
        assert got == expected[::-1], f"exists_many must keep the order asked; got {got}"

    def test_exists_many_across_folders(self, result: StorageResult) -> None:
        for location in ("x/a.pkl", "y/z/b.pkl", "top.pkl"):
            result.write(1, location=location)
        query = ["top.pkl", "x/a.pkl", "nofolder/a.pkl", "y/z/b.pkl", "y/a.pkl", "x", "y/z"]
        expected = [True, True, False, True, False, False, False]
        got = result.exists_many(query)
        assert got == expected, (
            "exists_many must answer each key across folders (a folder is not a key); for "
            f"{query} expected {expected}, got {got}"
        )

    def test_exists_many_short_lists_and_empty(self, result: StorageResult) -> None:
        written = result.write(1, location="s/one.pkl")
        assert result.exists_many([]) == [], "exists_many of no keys must return []"
        got = result.exists_many(["s/none.pkl", location_of(written)])
        assert got == [False, True], (
            f"exists_many must accept canonical URLs and keep the order; got {got}"
        )
        got = result.exists_many([location_of(written)])
        assert got == [True], f"exists_many of one stored key must be [True]; got {got}"

    def test_exists_many_refuses_unsafe_locations(self, result: StorageResult) -> None:
        must = "exists_many must refuse a location that leaves the root"
        with expect_error(UnsafeLocationError, must):
            result.exists_many(["ok.pkl", "a/b.pkl", "c.pkl", "../outside.pkl"])

    @applies_when(supports_delete=True)
    def test_exists_many_sees_deletes_and_new_writes(self, result: StorageResult) -> None:
        query = [f"fresh/{i}.pkl" for i in range(5)]
        for location in query[:4]:
            result.write(1, location=location)
        first = result.exists_many(query)
        result.delete(query[1])
        result.write(1, location=query[4])
        second = result.exists_many(query)
        assert (first, second) == ([True] * 4 + [False], [True, False, True, True, True]), (
            "exists_many must see every delete and write done before it (no stale listing); "
            f"got {first} then {second}"
        )

    # == put_if_absent =========================================================
    @applies_when(supports_put_if_absent=True)
    def test_put_if_absent_exactly_one_winner(self, result: StorageResult) -> None:
        n, rounds = 12, self.race_rounds
        start = threading.Barrier(n, timeout=60)
        won: dict[tuple[int, int], bool] = {}

        def work(i: int) -> None:
            for r in range(rounds):  # one race per key, all threads released together
                start.wait()
                won[r, i] = result.put_if_absent(f"marker-{i}".encode(), location=f"locks/{r}")

        workers = Workers()
        for i in range(n):
            workers.start(f"creator-{i}", work, i)
        workers.check("concurrent put_if_absent calls must all return (True or False)")
        for r in range(rounds):
            winners = [i for (rr, i), ok in won.items() if ok and rr == r]
            assert len(winners) == 1, (
                "put_if_absent must be one atomic check-and-create: of concurrent callers "
                f"exactly one must get True; {len(winners)} of {n} did ({winners})"
            )
            stored = self.raw_read(result, f"locks/{r}")
            assert stored == f"marker-{winners[0]}".encode(), (
                f"put_if_absent must store the winner's bytes (marker-{winners[0]}); "
                f"found {stored!r}"
            )

    @applies_when(supports_put_if_absent=True)
    def test_put_if_absent_second_call_returns_false(self, result: StorageResult) -> None:
        first = result.put_if_absent(b"first", location="locks/two")
        second = result.put_if_absent(b"second", location="locks/two")
        assert (first, second) == (True, False), (
            f"put_if_absent must return True when it created the key, then False; got "
            f"{first!r} then {second!r}"
        )
        stored = self.raw_read(result, "locks/two")
        assert stored == b"first", f"a refused put_if_absent must keep the first's; {stored!r}"
        assert result.exists("locks/two"), "a key made by put_if_absent must exist"
        other = result.put_if_absent(b"other", location="locks/two-b")
        assert other is True, "put_if_absent must answer for its own key only"

    @applies_when(supports_put_if_absent=True)
    def test_put_if_absent_refuses_a_written_value(self, result: StorageResult) -> None:
        result.write("value", location="locks/written.pkl")
        created = result.put_if_absent(b"marker", location="locks/written.pkl")
        assert created is False, "put_if_absent must return False where a value is stored"
        back = result.read("locks/written.pkl").value
        assert back == "value", f"a refused put_if_absent must not touch the value; {back!r}"

    @applies_when(supports_put_if_absent=True, supports_delete=True)
    def test_put_if_absent_after_delete(self, result: StorageResult) -> None:
        assert result.put_if_absent(b"held", location="locks/release"), "the first must win"
        assert result.delete("locks/release"), "delete must remove what put_if_absent stored"
        again = result.put_if_absent(b"again", location="locks/release")
        stored = self.raw_read(result, "locks/release")
        assert (again, stored) == (True, b"again"), (
            "after delete, put_if_absent must create the key again (a released lock can be "
            f"taken): returned {again!r}, stored {stored!r}"
        )

    @applies_when(supports_put_if_absent=False)
    def test_put_if_absent_refused_clearly(self, result: StorageResult) -> None:
        must = "a storage without an atomic create must refuse put_if_absent with an error"
        with expect_error(StorageError, must) as info:
            result.put_if_absent(b"marker", location="locks/none")
        assert "put_if_absent" in str(info.value), f"the error must name put_if_absent: {info}"
        assert result.exists("locks/none") is False, "a refused put_if_absent must store nothing"

    # == list and stat =========================================================
    def test_list_by_prefix(self, result: StorageResult) -> None:
        stored = ["l/a.pkl", "l/sub/b.pkl", "l-other/c.pkl", "top.pkl"]
        for location in stored:
            result.write(1, location=location)
        storage = self.storage_of(result)
        under = sorted(storage.list("l/"))
        assert under == ["l/a.pkl", "l/sub/b.pkl"], (
            "list(prefix) must return the full keys under that folder, at any depth, and "
            f"nothing from a sibling folder; list('l/') returned {under}"
        )
        every = sorted(storage.list(""))
        assert every == sorted(stored), f"list('') must return every key put; got {every}"
        none = list(storage.list("empty/"))
        assert none == [], f"list of a prefix with no keys must be empty; got {none}"

    def test_stat_returns_the_record(self, result: StorageResult) -> None:
        written = result.write({"big": "value"}, location="st/a.pkl")
        rec = result.stat(written.location)
        assert rec == written.record, (
            f"head must return the metadata put (the record); stat gave {rec}, "
            f"write stored {written.record}"
        )
        missing = result.stat("st/missing.pkl")
        assert missing is None, f"head must return None for a missing key; got {missing!r}"
