"""The backend contract suite: what every Result backend must do.

Subclass :class:`ResultContract` in a test module and override the
``result`` fixture to return a fresh, empty Result of your backend::

    class TestSQLiteResult(ResultContract):
        supports_put_if_absent = True       # capability flags (class attributes)

        @pytest.fixture
        def result(self, tmp_path):
            return SQLiteResult(tmp_path / "results.db")

Every built-in backend (Local, Memory, FSSpec, S3, GCS, Azure) passes this
suite unchanged. The suite looks underneath the Result only through the
public :class:`~resultkit.results.Storage` API of ``result.storage``, so any
:class:`~resultkit.results.StorageResult` needs nothing else (the hooks are
in :class:`~resultkit.testing._support.RawAccess`).

Capability flags
----------------
Like fsspec's abstract filesystem tests, a test class says what its backend
can do with class attributes (see :data:`CAPABILITIES`). A test that does not
apply to the declared capabilities is **not collected** for that class (it is
removed when the class is defined, and the plugin lists it after collection
with the flag that removed it); nothing is skipped, and no test returns early.
Where a flag can be read off the storage, a test checks the declaration
(``test_declared_capabilities_match_the_storage``), so a wrong flag fails
instead of hiding tests. Where a capability is absent, the suite checks the
refusal instead (``test_put_if_absent_refused_clearly``,
``test_delete_refused_keeps_the_value``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from ..results import Result
from ._batch import BatchTests
from ._concurrency import ConcurrencyTests
from ._integrity import IntegrityTests
from ._locations import LocationTests
from ._operations import OperationTests
from ._values import ValueTests

__all__ = ["ResultContract", "CAPABILITIES"]

#: The capability flags a test class may set, what each says, and its default.
CAPABILITIES: dict[str, tuple[bool, str]] = {
    "supports_put_if_absent": (
        True,
        "the storage has an atomic create (Storage.put_if_absent): single-flight locks work "
        "on it; must equal result.storage.supports_put_if_absent",
    ),
    "supports_delete": (
        True,
        "Storage.delete removes a pair; False for a write-once store whose delete raises",
    ),
    "persists_across_processes": (
        True,
        "a value written by one process is read by another (False for a per-process store "
        "such as MemoryResult)",
    ),
}
_FLAG_PREFIXES = ("supports_", "persists_")


@pytest.mark.result_contract
class ResultContract(
    ValueTests, LocationTests, IntegrityTests, OperationTests, ConcurrencyTests, BatchTests
):
    """Base class of the contract suite; override :meth:`result`.

    Class attributes a subclass may set:

    * capability flags (:data:`CAPABILITIES`): ``supports_put_if_absent``,
      ``supports_delete``, ``persists_across_processes`` (all ``True`` by default);
    * ``large_size``: bytes of the large round trip (lower it for a slow store).
    * ``race_rounds``: rounds of the concurrent ``put_if_absent`` race (lower it
      for a slow store).
    """

    supports_put_if_absent: bool = True
    supports_delete: bool = True
    persists_across_processes: bool = True

    #: Size of the "large value" round trip; backends may lower it for slow stores.
    large_size: int = 50 * 2**20
    race_rounds: int = 20

    #: The tests this class does not collect, and the flag(s) that removed each.
    not_applicable: ClassVar[dict[str, str]] = {}

    @pytest.fixture
    def result(self) -> Result:
        raise NotImplementedError(
            "override the `result` fixture to return a fresh, empty Result of your backend"
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in vars(cls):
            if name.startswith(_FLAG_PREFIXES) and name not in CAPABILITIES:
                raise TypeError(
                    f"{cls.__name__}.{name} is not a capability flag of ResultContract; "
                    f"known flags: {', '.join(CAPABILITIES)}"
                )
        for flag in CAPABILITIES:
            if not isinstance(getattr(cls, flag), bool):
                raise TypeError(f"{cls.__name__}.{flag} must be True or False")
        cls.not_applicable = {}
        for name, test in _CONDITIONAL_TESTS.items():
            requires: dict[str, bool] = test.__contract_requires__  # type: ignore[attr-defined]
            differ = [
                f"{f} = {getattr(cls, f)}"
                for f, want in requires.items()
                if getattr(cls, f) != want
            ]
            if differ:
                setattr(cls, name, None)  # pytest collects callables only
                cls.not_applicable[name] = ", ".join(differ)
            elif getattr(cls, name, None) is None:  # a base class removed it
                setattr(cls, name, test)


def _conditional_tests() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for base in reversed(ResultContract.__mro__):
        for name, test in vars(base).items():
            if name.startswith("test_") and hasattr(test, "__contract_requires__"):
                found[name] = test
    for name, test in found.items():
        unknown = set(test.__contract_requires__) - set(CAPABILITIES)  # type: ignore[attr-defined]
        assert not unknown, f"{name} requires unknown capability flags {unknown}"
    return found


_CONDITIONAL_TESTS = _conditional_tests()
