"""A "third-party" backend, as a user would write one: a Result over fsspec's
``DirFileSystem`` (a folder of another filesystem presented as a root)."""

from __future__ import annotations

from typing import Any

from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

from resultkit.results import FSSpecResult


class SandboxResult(FSSpecResult):
    """Results stored inside one folder, seen through ``DirFileSystem``."""

    def __init__(self, folder: str, **kwargs: Any) -> None:
        super().__init__(DirFileSystem(path=folder, fs=LocalFileSystem()), "", **kwargs)
