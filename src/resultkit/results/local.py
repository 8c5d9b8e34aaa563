"""LocalResult: results in a folder on the local disk."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigurationError
from ..serializers import Serializer
from ._fsspec import FSSpecResult
from ._location import LocationTemplate

__all__ = ["LocalResult", "DEFAULT_LOCAL_DIR"]

#: Where LocalResult stores results when no ``dir`` is given (``RESULTKIT_HOME``
#: overrides the ``~/.resultkit`` part).
DEFAULT_LOCAL_DIR = "results"


def _default_dir() -> str:
    home = os.environ.get("RESULTKIT_HOME") or os.path.join("~", ".resultkit")
    return os.path.join(home, DEFAULT_LOCAL_DIR)


class LocalResult(FSSpecResult):
    """Results stored as files under ``dir`` on the local disk.

    ``dir`` has ``~`` expanded and is made absolute once, at construction
    (so a later ``chdir`` does not move the results); it is used exactly as
    given, never redirected, and created at the first write. Writes go to a
    temporary file in the same folder and are published with ``os.replace``;
    ``fsync=True`` also flushes them to the disk for power-loss durability.

    Example:
        >>> import tempfile
        >>> r = LocalResult(dir=tempfile.mkdtemp(), location="{name}.pkl")
        >>> r.write({"rows": 3}, name="clean").read().value
        {'rows': 3}
    """

    default_protocol = "file"

    @property
    def dir(self) -> str:
        """The absolute folder the results are stored in (fixed when the Result is made)."""
        state = self.__dict__
        return str(state["_dir"] if "_dir" in state else state["dir"])  # "dir": older pickles

    @dir.setter
    def dir(self, value: str) -> None:
        # The folder is the storage's root: a new dir set later would show in
        # repr() and be used by nothing.
        if "_dir" in self.__dict__ or "dir" in self.__dict__:
            raise ConfigurationError(
                f"a LocalResult's dir is fixed when it is made ({self.dir!r}): "
                f"make another one, LocalResult(dir={value!r})"
            )
        self.__dict__["_dir"] = value

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        value: Any = None,
        fsync: bool = False,
        verify: bool = True,
        signing_key: Any = None,
        retries: Any = None,
    ) -> None:
        raw = os.fspath(dir) if dir is not None else _default_dir()
        if not raw:
            raise ConfigurationError("LocalResult(dir=...) must not be empty")
        path = os.path.abspath(os.path.expanduser(raw))
        if os.path.exists(path) and not os.path.isdir(path):
            raise ConfigurationError(
                f"LocalResult dir {path!r} exists and is not a folder; choose another dir"
            )
        self.dir = path
        super().__init__(
            "file",
            path,
            location=location,
            serializer=serializer,
            value=value,
            fsync=fsync,
            verify=verify,
            signing_key=signing_key,
            retries=retries,
        )
