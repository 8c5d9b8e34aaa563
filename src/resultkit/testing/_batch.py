"""Contract tests: ``write_many`` and ``read_many`` (many items at once, each like a single call)."""

from __future__ import annotations

from ..errors import (
    ConfigurationError,
    ResultNotFoundError,
    UnsafeLocationError,
)
from ..results import BatchError, StorageResult
from ._support import RawAccess, expect_error, location_of

__all__ = ["BatchTests"]

#: Items of the batch tests: enough to run several at once, few enough for slow stores.
BATCH_ITEMS = 20


class BatchTests(RawAccess):
    def test_write_many_then_read_many(self, result: StorageResult) -> None:
        items = {
            f"batch/{i % 3}/item-{i}.pkl": {"i": i, "pad": "x" * i} for i in range(BATCH_ITEMS)
        }
        written = result.write_many(items, concurrency=4)
        assert [location_of(w).endswith(loc) for w, loc in zip(written, items, strict=True)] == [
            True
        ] * len(items), "write_many must return one written Result per item, in the order given"
        assert all(w.record is not None for w in written), (
            "each Result write_many returns must hold its integrity record, as write's does"
        )
        order = list(reversed([location_of(w) for w in written]))
        back = result.read_many(order, concurrency=4)
        got = [r.value for r in back]
        want = [items[k] for k in reversed(list(items))]
        assert got == want, "read_many must return every value written, in the order asked"
        single = result.read("batch/1/item-1.pkl").value
        assert single == items["batch/1/item-1.pkl"], "a value written by write_many must read"
        assert result.write_many([]) == [] and result.read_many([]) == [], (
            "an empty batch must return []"
        )

    def test_read_many_failures_keep_the_others(self, result: StorageResult) -> None:
        written = result.write_many([(f"bf/{i}.pkl", i) for i in range(5)])
        asked = [location_of(w) for w in written[:3]] + ["bf/missing.pkl", "bf/gone.pkl"]
        asked[1:1] = ["bf/absent.pkl"]
        must = "read_many must raise BatchError naming each failed item when some fail"
        with expect_error(BatchError, must) as caught:
            result.read_many(asked, concurrency=3)
        error = caught.value
        failed = [loc.rsplit("/", 1)[-1] for loc, _ in error.failures]
        assert failed == ["absent.pkl", "missing.pkl", "gone.pkl"], (
            f"BatchError.failures must name each failed location, in order; got {failed}"
        )
        assert all(name in str(error) for name in failed), (
            f"the BatchError message must name each failed location; got {error}"
        )
        kinds = {type(exc).__name__ for _, exc in error.failures}
        assert all(isinstance(exc, ResultNotFoundError) for _, exc in error.failures), (
            f"a missing item must fail as a single read does (ResultNotFoundError); got {kinds}"
        )
        values = [error.outcomes[i].value for i in (0, 2, 3)]
        assert values == [0, 1, 2], (
            f"the items that succeeded must keep their outcome in BatchError.outcomes; got {values}"
        )
        inline = result.read_many(asked, return_exceptions=True)
        shape = [type(o).__name__ for o in inline]
        want = [type(o).__name__ for o in error.outcomes]
        assert shape == want, (
            f"return_exceptions=True must return each failure in its item's place; got {shape}"
        )

    def test_batches_refuse_bad_locations_before_any_request(self, result: StorageResult) -> None:
        items = [(f"ok/{i}.pkl", i) for i in range(5)]
        hostile = [*items[:2], ("../outside.pkl", "x"), *items[2:]]
        must = "write_many must refuse a location outside the root before writing anything"
        with expect_error(UnsafeLocationError, must):
            result.write_many(hostile)
        twice = [*items, ("ok/2.pkl", "again")]
        must = "write_many must refuse one location given twice before writing anything"
        with expect_error(ConfigurationError, must):
            result.write_many(twice)
        left = self.raw_list(result)
        assert left == [], f"a refused batch must leave nothing written; found {left}"
        must = "read_many must refuse a location outside the root"
        with expect_error(UnsafeLocationError, must):
            result.read_many(["ok/0.pkl", "../../etc/passwd"])
        must = "concurrency must be a positive whole number"
        with expect_error(ConfigurationError, must):
            result.read_many(["ok/0.pkl"], concurrency=0)

    def test_write_many_replaces_like_write(self, result: StorageResult) -> None:
        result.write_many({f"rw/{i}.pkl": "old" for i in range(4)})
        result.write_many({f"rw/{i}.pkl": f"new-{i}" for i in range(4)}, concurrency=4)
        got = [r.value for r in result.read_many([f"rw/{i}.pkl" for i in range(4)])]
        assert got == [f"new-{i}" for i in range(4)], (
            f"write_many must replace stored values as write does; got {got}"
        )
        objects = [o for o in self.raw_objects(result) if ".rktmp-" in o]
        assert objects == [], f"write_many must leave no temporary object; found {objects}"
