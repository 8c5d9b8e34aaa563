"""FSSpecResult: the storage base every backend shares.

Location safety, the integrity record and atomic publish live here, once.
A backend (LocalResult, S3Result...) only says which fsspec filesystem to
build and with which credentials.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from typing import Any, ClassVar

import fsspec
from fsspec.asyn import sync
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from ..errors import (
    ConfigurationError,
    ResultCorruptError,
    ResultKitError,
    ResultNotFoundError,
    SerializerMismatchError,
    StorageAccessError,
    StorageError,
    UnsafeLocationError,
)
from ..serializers import Serializer
from ._base import Result
from ._localio import HashingReader, PreallocatedFile, fsync_folder
from ._location import (
    RECORD_SUFFIX,
    TEMP_MARKER,
    FormattedLocation,
    LocationTemplate,
    check_relative,
)
from ._record import HashingWriter, Record

__all__ = ["FSSpecResult", "from_url"]

# Object stores publish an object only when its upload completes (one PUT or
# a completed multipart upload), so writing in place is already atomic there;
# a rename would be a second full copy.
_OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})

# How long a remote payload must keep mismatching its record (the same pair,
# read again and again) before it is called corrupt rather than mid-publish.
_STABLE_MISMATCH_SECONDS = 0.5

_publish_locks: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_publish_locks_guard = threading.Lock()


def _publish_lock(key: str) -> Any:
    with _publish_locks_guard:
        lock = _publish_locks.get(key)
        if lock is None:
            lock = threading.Lock()
            _publish_locks[key] = lock
        return lock


@contextlib.contextmanager
def _dir_flock(directory: str, shared: bool = False) -> Iterator[None]:
    """Lock a local folder (POSIX flock): writers exclusively while they publish a
    payload and its record, readers shared while they pick up the pair.

    Each call opens its own descriptor, so the lock also orders threads of one
    process.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: in-process lock only
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class _SpillingUpload:
    """Writes to an object store: one PUT for small payloads, a streamed upload past a limit.

    Nothing is visible until :meth:`commit`; :meth:`discard` aborts a started
    multipart upload instead of completing it (closing an fsspec file, even at
    garbage collection, would commit what was written so far).
    """

    def __init__(self, fs: AbstractFileSystem, path: str, limit: int) -> None:
        self._fs = fs
        self._path = path
        self._limit = limit
        self._buffer: io.BytesIO | None = io.BytesIO()
        self._file: Any = None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._file is None:
            assert self._buffer is not None
            if self._buffer.tell() + view.nbytes <= self._limit:
                return self._buffer.write(view)
            self._file = self._fs.open(self._path, "wb")
            self._file.write(self._buffer.getvalue())
            self._buffer = None
        # Feed the upload in slices so it flushes a part at a time instead of
        # buffering (and copying) one huge write whole.
        step = self._limit
        for start in range(0, view.nbytes, step):
            self._file.write(view[start : start + step])
        return view.nbytes

    def commit(self) -> None:
        if self._file is None:
            assert self._buffer is not None
            self._fs.pipe_file(self._path, self._buffer.getvalue())
        else:
            self._file.close()

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.discard()
            self._file.closed = True


class FSSpecResult(Result):
    """A Result stored under a root folder of any fsspec filesystem.

    Args:
        fs: an fsspec filesystem instance, or a protocol name (``"file"``,
            ``"memory"``, ``"s3"``...) to build one lazily from
            ``storage_options``.
        root: the folder (or ``bucket/prefix``) that every location is relative to.
        location: the location template (str or callable); default: a unique name.
        serializer: default :class:`~resultkit.serializers.PickleSerializer`.
        storage_options: passed to the filesystem when it is built lazily
            (credentials go here; they never appear in ``repr()``).
        fsync: local filesystems only: fsync the payload and its folder before
            and after the publish, so it survives a power loss.
        verify: check the integrity record on read (default). ``False`` reads
            payloads written by other tools, which have no record.

    Example:
        >>> from fsspec.implementations.memory import MemoryFileSystem
        >>> r = FSSpecResult(MemoryFileSystem(), "/demo", location="{x}.pkl")
        >>> r.write(41, x="a").read().value
        41
    """

    #: Protocol used when ``fs`` is not given (subclasses set their own).
    default_protocol: ClassVar[str] = "file"
    #: On object stores, payloads up to this size go up in one request; larger
    #: ones stream as a multipart (block) upload completed as one object.
    single_request_limit: ClassVar[int] = 5 * 2**20

    def __init__(
        self,
        fs: AbstractFileSystem | str | None = None,
        root: str = "",
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        value: Any = None,
        storage_options: dict[str, Any] | None = None,
        fsync: bool = False,
        verify: bool = True,
    ) -> None:
        super().__init__(value=value, location=location, serializer=serializer)
        if isinstance(fs, AbstractFileSystem):
            self._fs: AbstractFileSystem | None = fs
            self._lazy = False
            fs_cls: type[AbstractFileSystem] = type(fs)
            if storage_options:
                raise ConfigurationError(
                    "storage_options only apply when the filesystem is built lazily; "
                    "pass a protocol name instead of a filesystem instance"
                )
        else:
            protocol = fs or self.default_protocol
            try:
                fs_cls = fsspec.get_filesystem_class(protocol)
            except (ValueError, ImportError) as exc:
                raise ConfigurationError(
                    f"no fsspec filesystem for protocol {protocol!r}: {exc}"
                ) from exc
            self._fs = None
            self._lazy = True
        self._protocols = (
            (fs_cls.protocol,) if isinstance(fs_cls.protocol, str) else tuple(fs_cls.protocol)
        )
        # Canonical URLs use the protocol the caller named (az://, gs://), else
        # the filesystem's first one.
        named = fs if isinstance(fs, str) else self.default_protocol
        self._protocol = named if named in self._protocols else self._protocols[0]
        self._storage_options = dict(storage_options or {})
        self._root = fs_cls._strip_protocol(root) if root else ""
        if isinstance(self._root, list):  # pragma: no cover - defensive
            raise ConfigurationError(f"root must be one path, got {root!r}")
        self.fsync = fsync
        self.verify = verify

    # -- filesystem ------------------------------------------------------------
    @property
    def fs(self) -> AbstractFileSystem:
        """The fsspec filesystem, built on first use (never pickled when lazy)."""
        if self._fs is None:
            self._fs = self._make_fs()
        return self._fs

    #: ``"module:Class"`` of the filesystem a backend builds, and the pip extra
    #: that installs it; ``None``: whatever fsspec registers for the protocol.
    filesystem_class: ClassVar[str | None] = None
    extra: ClassVar[str] = ""

    def _make_fs(self) -> AbstractFileSystem:
        """Build the filesystem from ``storage_options`` (credentials included)."""
        if self.filesystem_class is None:
            return fsspec.filesystem(self._protocol, **self._storage_options)
        module, _, name = self.filesystem_class.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                f"{type(self).__name__} needs {module}: pip install 'resultkit[{self.extra}]'"
            ) from exc
        return cls(**self._storage_options)

    @staticmethod
    def _bucket_root(kind: str, name: str, prefix: str) -> str:
        """``name/prefix`` for a bucket or container, refusing names with a '/'."""
        if not name or "/" in name:
            raise ConfigurationError(
                f"a {kind} name without '/' is needed, got {name!r}; use prefix= for folders"
            )
        prefix = prefix.strip("/")
        return f"{name}/{prefix}" if prefix else name

    def _head_request(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        """Run one async metadata request of the filesystem; not found means ``False``."""
        try:
            sync(self.fs.loop, request, *args, **kwargs)
        except FileNotFoundError:
            return False
        return True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if state.get("_lazy"):
            state["_fs"] = None  # clients hold sockets and threads: rebuild on the worker
        return state

    @property
    def root_url(self) -> str:
        """The root as a URL, e.g. ``file:///home/me/.resultkit/results``."""
        return self._url(self._root)

    @property
    def _is_local(self) -> bool:
        return self._protocol == "file" or (
            self._fs is not None and isinstance(self._fs, LocalFileSystem)
        )

    @property
    def _publishes_in_place(self) -> bool:
        return self._protocol in _OBJECT_STORE_PROTOCOLS

    # -- locations -------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self._protocol}://{path}"

    def _join(self, rel: str) -> str:
        if not self._root:
            return rel
        return self._root + rel if self._root.endswith("/") else f"{self._root}/{rel}"

    def _path(self, canonical: str) -> str:
        return canonical[len(self._protocol) + 3 :]

    def _resolve(self, location: str) -> str:
        if "://" in location:
            proto = location.split("://", 1)[0]
            if proto not in self._protocols:
                raise UnsafeLocationError(
                    f"location {location!r} is on another storage ({proto}://); this result "
                    f"stores under {self.root_url}. Pass a location relative to that root.",
                    location=location,
                )
            stripped = location.split("://", 1)[1]
            if self._protocol == "file":
                stripped = LocalFileSystem._strip_protocol(location)
            prefix = (
                ""
                if not self._root
                else (self._root if self._root.endswith("/") else self._root + "/")
            )
            if not stripped.startswith(prefix):
                raise UnsafeLocationError(
                    f"location {location!r} is outside this result's root {self.root_url}",
                    location=location,
                )
            location = stripped[len(prefix) :]
        rel = check_relative(location, self.root_url)
        return self._url(self._join(rel))

    # -- errors ----------------------------------------------------------------
    @contextlib.contextmanager
    def _storage_errors(self, location: str, action: str) -> Iterator[None]:
        """Turn filesystem exceptions into resultkit's, naming the location."""
        try:
            yield
        except ResultKitError:
            raise
        except Exception as exc:
            raise self._translate(location, action, exc) from exc

    def _translate(self, location: str, action: str, exc: Exception) -> ResultKitError:
        if isinstance(exc, FileNotFoundError):
            if action in ("read", "check"):
                return ResultNotFoundError(
                    f"nothing is stored at {location} (while trying to {action})",
                    location=location,
                )
            return StorageError(
                f"could not {action} {location}: the bucket, container or folder does not "
                f"exist ({exc}). Create it first.",
                location=location,
            )
        if isinstance(exc, PermissionError) or _status_code(exc) in (401, 403):
            return self._access_error(location, action, exc)
        return StorageError(
            f"could not {action} {location}: {type(exc).__name__}: {exc}", location=location
        )

    @staticmethod
    def _access_error(location: str, action: str, exc: BaseException) -> StorageAccessError:
        return StorageAccessError(
            f"access denied to {location} while trying to {action} ({type(exc).__name__}). "
            "Check the credentials and permissions for this storage.",
            location=location,
        )

    # -- exists ----------------------------------------------------------------
    def _exists(self, location: str) -> bool:
        try:
            return self._head(self._path(location))
        except ResultKitError:
            raise
        except Exception as exc:  # a plain try: this is the hot path of target checks
            raise self._translate(location, "check", exc) from exc

    def _head(self, path: str) -> bool:
        """Whether an object exists at ``path``, with one metadata request.

        Object-store backends override this to send exactly one HEAD (the
        generic ``fs.info`` may also list the folder, or answer from a stale
        listing cache). Not-found is ``False``; any other failure raises.
        """
        if self._is_local:
            return os.path.isfile(path)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return False
        return info.get("type") != "directory"

    def _exists_many(self, locations: list[FormattedLocation]) -> list[bool]:
        if len(locations) < 4:
            return super()._exists_many(locations)
        by_folder: dict[str, set[str]] = {}
        for loc in locations:
            by_folder.setdefault(self._path(loc).rpartition("/")[0], set())
        for folder in by_folder:
            with self._storage_errors(self._url(folder), "list"):
                self.fs.invalidate_cache(folder)
                try:
                    entries = self.fs.ls(folder, detail=True)
                except FileNotFoundError:
                    entries = []
            by_folder[folder] = {
                self._strip(e["name"]) for e in entries if e.get("type") != "directory"
            }
        return [
            self._path(loc) in by_folder[self._path(loc).rpartition("/")[0]] for loc in locations
        ]

    def _strip(self, name: str) -> str:
        return name.split("://", 1)[1] if "://" in name else name

    # -- write -----------------------------------------------------------------
    def _write(self, location: str, value: Any) -> Record:
        path = self._path(location)
        with self._storage_errors(location, "write"):
            if self._publishes_in_place:
                # Payload and record are two objects: one writer at a time per key
                # in this process, so they always belong together.
                with _publish_lock(location):
                    return self._write_in_place(path, value)
            return self._write_and_rename(path, value)

    def _write_in_place(self, path: str, value: Any) -> Record:
        upload = _SpillingUpload(self.fs, path, self.single_request_limit)
        hw = HashingWriter(upload)
        try:
            self.serializer.dump(value, hw)
            upload.commit()
        except BaseException:
            upload.discard()
            raise
        record = Record(self.serializer.name, hw.hexdigest(), hw.size)
        self.fs.pipe_file(path + RECORD_SUFFIX, record.to_bytes())
        return record

    def _write_and_rename(self, path: str, value: Any) -> Record:
        fs = self.fs
        parent, _, name = path.rpartition("/")
        token = uuid.uuid4().hex[:12]
        folder = f"{parent}/" if parent else ""
        tmp = f"{folder}.{name}{TEMP_MARKER}{token}"
        tmp_record = f"{folder}.{name}{RECORD_SUFFIX}{TEMP_MARKER}{token}"
        local = self._is_local
        if parent:
            if local:
                os.makedirs(parent, exist_ok=True)
            else:
                fs.makedirs(parent, exist_ok=True)
        try:
            with self._open_temp(tmp, local) as f:
                hw = HashingWriter(f)
                self.serializer.dump(value, hw)
            record = Record(self.serializer.name, hw.hexdigest(), hw.size)
            with self._open_temp(tmp_record, local) as f:
                f.write(record.to_bytes())
            # Payload first, then its record, under a lock so two writers of
            # the same key cannot leave one's record beside the other's payload.
            lock = _publish_lock(self._url(path))
            with lock, _dir_flock(parent) if local else contextlib.nullcontext():
                self._rename(tmp, path, local)
                self._rename(tmp_record, path + RECORD_SUFFIX, local)
                if local and self.fsync:
                    fsync_folder(parent)
        except BaseException:
            for leftover in (tmp, tmp_record):
                with contextlib.suppress(Exception):
                    if local:
                        os.unlink(leftover)
                    else:
                        fs.rm_file(leftover)
            raise
        return record

    def _open_temp(self, path: str, local: bool) -> Any:
        if local:
            return PreallocatedFile(path, fsync=self.fsync)
        return self.fs.open(path, "wb")

    def _rename(self, src: str, dst: str, local: bool) -> None:
        if local:
            os.replace(src, dst)
        else:
            self.fs.mv(src, dst)

    # -- conditional create ---------------------------------------------------------
    def put_if_absent(
        self, data: bytes, location: LocationTemplate | None = None, **kwargs: Any
    ) -> bool:
        """Store raw ``data`` at ``location`` only if nothing is there; return whether it did.

        The check and the create are one atomic operation on the backend
        (local ``O_EXCL``, S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``,
        Azure ``If-None-Match: *``), so of many concurrent callers exactly one
        gets ``True``. It is the primitive for single-flight locks. No
        integrity record is written: ``data`` is a marker, not a result.
        """
        canonical = self._canonical_location(location, kwargs)
        path = self._path(canonical)
        with self._storage_errors(canonical, "create"):
            if self._is_local:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                try:
                    with PreallocatedFile(path, fsync=self.fsync) as f:  # O_EXCL create
                        f.write(data)
                except FileExistsError:
                    return False
                return True
            try:
                self.fs.pipe_file(path, data, mode="create")
            except FileExistsError:
                return False
            except OSError as exc:
                # Some S3 servers (SeaweedFS) answer 412 without the detail
                # s3fs needs to call it FileExistsError.
                if _precondition_failed(exc):
                    return False
                raise
            return True

    def delete(self, location: LocationTemplate | None = None, **kwargs: Any) -> bool:
        """Remove the payload and its record; return whether anything was there."""
        canonical = self._canonical_location(location, kwargs)
        path = self._path(canonical)
        found = False
        with self._storage_errors(canonical, "delete"):
            for p in (path + RECORD_SUFFIX, path):
                try:
                    self.fs.rm_file(p)
                    found = True
                except FileNotFoundError:
                    pass
        return found

    # -- read ------------------------------------------------------------------
    def _read(self, location: str) -> tuple[Any, Record | None]:
        path = self._path(location)
        with self._storage_errors(location, "read"):
            if self._is_local:
                return self._read_local(location, path)
            return self._read_remote(location, path)

    def _read_local(self, location: str, path: str) -> tuple[Any, Record | None]:
        # Under a shared folder lock, the record and the payload's descriptor
        # are one consistent pair (writers publish both under the exclusive
        # lock); an open descriptor keeps its file whatever is renamed after.
        with _dir_flock(os.path.dirname(path), shared=True):
            raw_record = self._cat_or_none(path + RECORD_SUFFIX)
            f = open(path, "rb")  # noqa: SIM115 - closed below
        with f:
            record = self._check_record(location, raw_record)
            streams = self._streams_loads()
            if streams:
                # One pass, one copy: deserialize while hashing, then check.
                # The value is thrown away unless size and digest match.
                value, error, size, digest = self._load_stream(f)
            else:
                # Check the bytes before handing them to the deserializer.
                payload = f.read()
                size, digest = len(payload), Record.digest_of(payload)
        if record is not None and (size, digest) != (record.size, record.digest):
            raise self._corrupt(location, record, size, digest)
        if not streams:
            return self.serializer.deserialize(payload), record
        if error is not None:
            raise error
        return value, record

    def _read_remote(self, location: str, path: str) -> tuple[Any, Record | None]:
        # Payload and record are two objects read by two requests; a writer in
        # another process may publish between them. Damage is stable, a publish
        # is not: a mismatch is called corrupt only once the same pair has been
        # seen for a while.
        first_seen: float | None = None
        previous: tuple[bytes | None, str] | None = None
        deadline = time.monotonic() + 10
        delay = 0.005
        while True:
            raw_record = self._cat_or_none(path + RECORD_SUFFIX)
            record = self._check_record(location, raw_record)
            payload = self._cat(path)
            size, digest = len(payload), Record.digest_of(payload)
            if record is None or (size, digest) == (record.size, record.digest):
                return self.serializer.deserialize(payload), record
            now = time.monotonic()
            if (raw_record, digest) != previous:
                previous, first_seen = (raw_record, digest), now
            elif first_seen is not None and now - first_seen >= _STABLE_MISMATCH_SECONDS:
                raise self._corrupt(location, record, size, digest)
            if now > deadline:
                raise ResultCorruptError(
                    f"the payload at {location} kept changing while it was read; "
                    "too many concurrent writers",
                    location=location,
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    @staticmethod
    def _corrupt(location: str, record: Record, size: int, digest: str) -> ResultCorruptError:
        return ResultCorruptError(
            f"the payload at {location} does not match its integrity record "
            f"(expected {record.size} bytes with digest {record.digest}, "
            f"found {size} bytes with {digest}). It was changed or damaged "
            "after it was written; write it again.",
            location=location,
        )

    def _streams_loads(self) -> bool:
        """Whether the serializer's ``load`` streams and is as specific as its ``deserialize``.

        (A subclass that overrides only ``deserialize`` must not be bypassed
        by an inherited streaming ``load``.)
        """
        mro = type(self.serializer).__mro__

        def owner(name: str) -> type:
            return next(k for k in mro if name in k.__dict__)

        load_owner = owner("load")
        return load_owner is not Serializer and mro.index(load_owner) <= mro.index(
            owner("deserialize")
        )

    def _load_stream(self, f: Any) -> tuple[Any, BaseException | None, int, str]:
        reader = HashingReader(f)
        value, error = None, None
        try:
            value = self.serializer.load(reader)
        except Exception as exc:  # judged after the digest: damage or a real error
            error = exc
        reader.drain()
        return value, error, reader.size, reader.hexdigest()

    def _cat(self, path: str) -> bytes:
        if self._is_local:
            with open(path, "rb") as f:
                return f.read()
        return self.fs.cat_file(path)

    def _cat_or_none(self, path: str) -> bytes | None:
        try:
            return self._cat(path)
        except FileNotFoundError:
            return None

    def _check_record(self, location: str, raw: bytes | None) -> Record | None:
        if not self.verify:
            return None
        if raw is None:
            if not self._exists(location):
                raise ResultNotFoundError(f"nothing is stored at {location}", location=location)
            raise ResultCorruptError(
                f"the payload at {location} has no integrity record ({RECORD_SUFFIX} file "
                "beside it): it was not written by resultkit, or its write was interrupted. "
                "Write it again, or read it with verify=False if you trust it.",
                location=location,
            )
        try:
            record = Record.from_bytes(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise ResultCorruptError(
                f"the integrity record of {location} is unreadable ({exc}); write it again",
                location=location,
            ) from exc
        if record.serializer != self.serializer.name:
            raise SerializerMismatchError(
                f"the payload at {location} was written with serializer "
                f"{record.serializer!r} but is being read with {self.serializer.name!r}; "
                "read it with a Result configured with the serializer that wrote it",
                location=location,
                written_by=record.serializer,
                reading_with=self.serializer.name,
            )
        return record

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={self.root_url!r}, location={self._location_repr()!r}, "
            f"serializer={self.serializer.name!r})"
        )


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of a client library's error, if it carries one."""
    for attr in ("status_code", "status", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return None


def _precondition_failed(exc: BaseException) -> bool:
    """Whether an error (or what caused it) is an HTTP 412 Precondition Failed."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if _status_code(seen) == 412 or "PreconditionFailed" in repr(seen):
            return True
        if "pre-conditions you specified did not hold" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def from_url(
    url: str,
    location: LocationTemplate | None = None,
    serializer: Serializer | None = None,
    **storage_options: Any,
) -> FSSpecResult:
    """Build a Result rooted at any fsspec URL.

    Example:
        >>> r = from_url("memory://from-url-demo")
        >>> r.write([1, 2], location="x.pkl").location
        'memory:///from-url-demo/x.pkl'

    ``from_url("s3://bucket/prefix", key=..., secret=...)``,
    ``from_url("gs://bucket/prefix", token=...)`` and local paths work the same;
    the storage options go to the filesystem, which is built lazily.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"from_url needs a URL string, got {url!r}")
    if "::" in url:  # chained URL (e.g. simplecache::s3://...): let fsspec build it now
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        return FSSpecResult(fs, root, location=location, serializer=serializer)
    protocol = fsspec.utils.get_protocol(url)
    return FSSpecResult(
        protocol,
        url,
        location=location,
        serializer=serializer,
        storage_options=storage_options,
    )
