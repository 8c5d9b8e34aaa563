"""Storages over fsspec filesystems: the payload as a file, its record in a sidecar.

A publish strategy and a read strategy are chosen once per backend by the
storage class: :class:`FileSystemStorage` (memory, and any fsspec
filesystem) writes a temporary file, then moves it and its record into
place; ``ObjectStoreStorage`` (``_objectstore.py``) and ``LocalFileStorage``
(``_localstorage.py``) specialise it. All keep the payload exactly as the serializer wrote it (so other tools open
it) and the record in ``P.rkmeta`` beside it.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from glob import has_magic
from typing import Any, BinaryIO

from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractFileSystem

from ..errors import ConfigurationError, ResultCorruptError
from ._errors import is_missing_container, precondition_failed
from ._fsclient import LazyFileSystem, filesystem_class_for
from ._keymarks import about_key, exists_about
from ._localsafety import process_space
from ._location import LOCKS_FOLDER, RECORD_SUFFIX, TEMP_MARKER, temp_stem
from ._locks import publish_lock
from ._record import Record, metadata_from_bytes
from ._renamewriter import RenameWriter
from .storage import Metadata, Storage, StorageWriter

__all__ = ["FileSystemStorage", "is_reserved_name"]

_MEMORY_CREATE = threading.Lock()


def is_reserved_name(name: str) -> bool:
    """Whether a file name is one of resultkit's own (a record or a temp file)."""
    return name.endswith(RECORD_SUFFIX) or TEMP_MARKER in name


class FileSystemStorage(LazyFileSystem, Storage):
    """Pairs of ``P`` (payload) and ``P.rkmeta`` (record) under a root of an fsspec filesystem.

    Args:
        fs: a filesystem instance, or a protocol name to build one lazily from
            ``storage_options`` (credentials go there; never in ``repr()``).
        root: the folder (or ``bucket/prefix``) every key is relative to.
        storage_options: arguments of the filesystem when built lazily.
        filesystem_class: ``"module:Class"`` to build instead of fsspec's
            registered class, and ``extra`` the pip extra that installs it.
    """

    atomic_pairs = False  # two objects: a reader may see them mid-publish

    @classmethod
    def client_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The storage options a filesystem this storage builds gets (a hook).

        ``options`` with the storage's own defaults added, the user's settings
        winning; a backend overrides it (S3 sets its client up for small
        requests). Not applied to a filesystem passed in: that one is yours.
        """
        return options

    def __init__(
        self,
        fs: AbstractFileSystem | str,
        root: str = "",
        storage_options: Mapping[str, Any] | None = None,
        *,
        filesystem_class: str | None = None,
        extra: str = "",
    ) -> None:
        if isinstance(fs, AbstractFileSystem):
            if storage_options:
                raise ConfigurationError(
                    "storage_options only apply when the filesystem is built lazily; "
                    "pass a protocol name instead of a filesystem instance"
                )
            self._fs: AbstractFileSystem | None = fs
            self._lazy = False
            fs_cls: type[AbstractFileSystem] = type(fs)
            protocol = None
        else:
            protocol = fs
            fs_cls = filesystem_class_for(protocol, filesystem_class, extra)
            self._fs = None
            self._lazy = True
        self._fs_lock = threading.Lock()
        self._filesystem_class_name = filesystem_class
        self._extra = extra
        self._protocols = (
            (fs_cls.protocol,) if isinstance(fs_cls.protocol, str) else tuple(fs_cls.protocol)
        )
        # Canonical URLs use the protocol the caller named (az://, gs://).
        named: str = protocol if isinstance(protocol, str) else ""
        self.protocol: str = named if named in self._protocols else str(self._protocols[0])
        self._storage_options = dict(storage_options or {})
        stripped = fs_cls._strip_protocol(root) if root else ""
        if not isinstance(stripped, str):  # pragma: no cover - defensive
            raise ConfigurationError(f"root must be one path, got {root!r}")
        self.root = stripped
        self.root_url = f"{self.protocol}://{self.root}"

    # -- keys and paths ------------------------------------------------------------
    def path(self, key: str) -> str:
        """The filesystem path of ``key``."""
        if not self.root:
            return key
        return self.root + key if self.root.endswith("/") else f"{self.root}/{key}"

    def url(self, key: str) -> str:
        return f"{self.protocol}://{self.path(key)}"

    def key_of(self, url: str) -> str | None:
        proto, sep, rest = url.partition("://")
        if not sep or proto not in self._protocols:
            return None
        if self.protocol == "file":
            rest = LocalFileSystem._strip_protocol(url)
        if not self.root:
            return rest
        prefix = self.root if self.root.endswith("/") else self.root + "/"
        return rest[len(prefix) :] if rest.startswith(prefix) else None

    def _temp_names(self, path: str) -> tuple[str, str]:
        parent, _, name = path.rpartition("/")
        folder = f"{parent}/" if parent else ""
        # The writer's pid (and PID namespace) in the name lets a later writer
        # tell a dead writer's leftovers from a live one's.
        token = f"{os.getpid()}-{process_space()}{uuid.uuid4().hex[:10]}"
        name = temp_stem(name)
        return (
            f"{folder}.{name}{TEMP_MARKER}{token}",
            f"{folder}.{name}{RECORD_SUFFIX}{TEMP_MARKER}{token}",
        )

    # -- the Storage API -------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self._head_path(self.path(key))

    def _head_path(self, path: str) -> bool:
        """Whether an object exists at ``path``, with one metadata request.

        Object-store backends override it to send exactly one HEAD (the
        generic ``fs.info`` may also list the folder). Not found is ``False``.
        """
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return False
        return bool(info.get("type") != "directory")

    def head(self, key: str) -> Metadata | None:
        path = self.path(key)
        raw = self._cat_or_none(path + RECORD_SUFFIX)
        if raw is None:
            return {} if self._head_path(path) else None
        return self._parse_sidecar(key, raw)

    def get(self, key: str) -> tuple[bytes, Metadata] | None:
        opened = self.open_reader(key)
        if opened is None:
            return None
        stream, metadata = opened
        with stream:
            return stream.read(), metadata

    def open_reader(self, key: str) -> tuple[BinaryIO, Metadata] | None:
        path = self.path(key)
        raw = self._cat_or_none(path + RECORD_SUFFIX)
        try:
            stream = self.fs.open(path, "rb")
        except FileNotFoundError:
            return None
        return stream, ({} if raw is None else self._parse_sidecar(key, raw))

    def put(self, key: str, data: bytes | bytearray | memoryview, metadata: Metadata) -> None:
        writer = self.open_writer(key)
        try:
            writer.write(data)
            writer.commit(metadata)
        except BaseException:
            writer.abort()
            raise

    def open_writer(self, key: str) -> StorageWriter:
        return RenameWriter(self, self.path(key))

    def delete(self, key: str) -> bool:
        with publish_lock(self.url(key)):  # never between a writer's two moves
            return self._delete_pair(key)

    def _delete_pair(self, key: str) -> bool:
        path = self.path(key)
        # Payload first: a reader that still finds the record then finds no
        # payload, which is "not found", never "a payload without its record".
        found = [self._remove(p) for p in (path, path + RECORD_SUFFIX)]
        return any(found)

    def _move(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``; paths with glob characters are copied, never expanded."""
        if has_magic(src) or has_magic(dst):  # fsspec's generic mv would glob-match them
            self.fs.cp_file(src, dst)
            self.fs.rm_file(src)
        else:
            self.fs.mv(src, dst)

    def _remove(self, path: str) -> bool:
        """Remove one file; whether it was there."""
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> Iterable[str]:
        base = self.path(prefix.rstrip("/")) if prefix else self.root
        self.fs.invalidate_cache()
        for attempt in range(5):
            try:
                found = self._find_under(base)
                break
            except FileNotFoundError:
                return []
            except RuntimeError:  # the memory filesystem's dict changed under its listing
                if attempt == 4:
                    raise
        start = len(self.root.rstrip("/")) + 1 if self.root else 0
        locks = prefix.startswith(LOCKS_FOLDER + "/")  # else locks are not keys of values
        keys = []
        for name in found:
            key = self._strip(str(name))[start:]
            # Some servers list a folder marker (the prefix itself): not a key.
            if (
                key
                and not key.endswith("/")
                and key != prefix.rstrip("/")  # the folder itself (a server's marker)
                and not is_reserved_name(key.rpartition("/")[2])
                and (locks or not key.startswith(LOCKS_FOLDER + "/"))
            ):
                keys.append(key)
        return sorted(keys)

    def _find_under(self, base: str) -> builtins.list[str]:
        """Every file path under the folder ``base`` (an object store overrides this)."""
        return list(self.fs.find(base))

    def exists_many(self, keys: builtins.list[str]) -> builtins.list[bool]:
        if len(keys) < 4:
            return [exists_about(k, self.exists) for k in keys]
        paths = [self.path(k) for k in keys]
        by_folder: dict[str, set[str]] = {p.rpartition("/")[0]: set() for p in paths}
        for folder in by_folder:
            self.fs.invalidate_cache(folder)
            try:
                entries = self.fs.ls(folder, detail=True)
            except FileNotFoundError:
                entries = []
            except Exception as exc:  # named by the folder's first key (about_key)
                first = keys[[p.rpartition("/")[0] for p in paths].index(folder)]
                raise about_key(exc, first)  # noqa: B904  (the same one, marked)
            by_folder[folder] = {
                self._strip(e["name"]) for e in entries if e.get("type") != "directory"
            }
        return [p in by_folder[p.rpartition("/")[0]] for p in paths]

    def put_if_absent(
        self, key: str, data: bytes | bytearray | memoryview, metadata: Metadata
    ) -> bool:
        path = self.path(key)
        if self.protocol.startswith(("s3", "gs", "gcs", "az", "abfs", "adl")):
            return self._create_on_object_store(path, data)
        parent = path.rpartition("/")[0]
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        # "xb" is an exclusive create (O_EXCL on a disk below a DirFileSystem);
        # fsspec's generic pipe_file(mode="create") checks, then writes: two can win.
        # The memory filesystem checks and creates in one step, but threads can
        # interleave: a process-wide lock makes it one.
        guard = (
            _MEMORY_CREATE if isinstance(self.fs, MemoryFileSystem) else contextlib.nullcontext()
        )
        payload = bytes(data)  # before the create: a failure then claims nothing
        with guard:
            try:
                with self.fs.open(path, "xb") as f:
                    f.write(payload)
            except FileExistsError:
                return False
            except ValueError as exc:  # the filesystem has no exclusive mode
                raise NotImplementedError(
                    f"{type(self.fs).__name__} cannot create a file exclusively ('xb'), so "
                    "put_if_absent (single-flight locks) is not available on it"
                ) from exc
        return True

    def _create_on_object_store(self, path: str, data: bytes | bytearray | memoryview) -> bool:
        try:
            self.fs.pipe_file(path, bytes(data), mode="create")  # If-None-Match / generation 0
        except FileExistsError:
            return False
        except OSError as exc:
            # Some S3 servers (SeaweedFS) answer 412 without the detail s3fs
            # needs to call it FileExistsError.
            if precondition_failed(exc):
                return False
            raise
        return True

    # -- helpers ---------------------------------------------------------------------
    def _strip(self, name: str) -> str:
        return name.split("://", 1)[1] if "://" in name else name

    def _size_or_none(self, path: str) -> int | None:
        try:
            return int(self.fs.size(path))
        except FileNotFoundError:
            return None

    def _digest_or_none(self, path: str) -> str | None:
        try:
            with self.fs.open(path, "rb") as f:
                return Record.digest_of_stream(f)
        except FileNotFoundError:
            return None

    def _cat_or_none(self, path: str) -> bytes | None:
        try:
            return bytes(self.fs.cat_file(path))
        except FileNotFoundError as exc:
            if is_missing_container(exc):  # not a miss: the bucket itself is gone
                raise
            return None

    def _parse_sidecar(self, key: str, raw: bytes) -> Metadata:
        try:
            return metadata_from_bytes(raw)
        except ValueError as exc:
            raise ResultCorruptError(
                f"the integrity record of {self.url(key)} is unreadable ({exc}); write it again",
                location=self.url(key),
            ) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_url!r})"
