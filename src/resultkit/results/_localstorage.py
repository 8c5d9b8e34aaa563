"""The local-disk storage: plain files, a temp file + ``os.replace`` publish.

A writer renames the new record into place first (it vouches for the old
payload and the new one, see ``with_previous``), then the payload, under an
exclusive folder lock that orders writers of the folder. Readers take no
lock: a writer stopped between its two renames blocks no reader, and a
writer killed there leaves a pair that reads as the old or the new value.
Temporary files of writers that died are removed by the next writer of the
folder.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import errno
import io
import os
import stat
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

from fsspec.implementations.local import LocalFileSystem

from ..errors import StorageError, UnsafeLocationError
from ._fsstorage import FileSystemStorage
from ._keymarks import exists_about
from ._localio import PreallocatedFile, exchange_available, fsync_folder
from ._localsafety import check_inside, files_under, refuse_long_name, sweep_dead_writers
from ._localwrite import LocalWriter, link_if_absent, remove_spares
from ._location import LOCKS_FOLDER, NAME_MAX, RECORD_SUFFIX, short
from ._locks import folder_lock, publish_lock
from ._record import Record, sidecar_metadata
from ._smallpairs import READ_FLAGS, keeps_pairs, read_small_pair
from .storage import Metadata, StorageWriter

__all__ = ["LocalFileStorage"]


class LocalFileStorage(FileSystemStorage):
    """Pairs of files under a local folder.

    Args:
        root: the absolute folder.
        fsync: flush the payload, its record and the folder to the disk at
            each publish, so a value survives a power loss.
        exchange: swap spare files into place (``renameat2``) where the
            system can; ``False`` always renames temp files. Default: true
            unless the environment variable ``RESULTKIT_LOCAL_EXCHANGE`` is ``0``.
    """

    def __init__(self, root: str, *, fsync: bool = False, exchange: bool | None = None) -> None:
        super().__init__(LocalFileSystem(), root)
        self.fsync = fsync
        self._url_prefix = f"{self.protocol}://{self.root.rstrip('/')}/"
        self._paths: dict[str, str] = {}  # key -> path, once its folder is checked
        #: Whether verified small pairs may be kept in memory (asked at the first read).
        self._keeps_pairs: bool | None = None
        if exchange is None:
            exchange = os.environ.get("RESULTKIT_LOCAL_EXCHANGE", "1") != "0"
        #: Whether publishes swap spare files into place (turned off for good
        #: when the filesystem refuses an exchange).
        self.exchange = exchange and exchange_available()

    def path(self, key: str) -> str:
        found = self._paths.get(key)
        if found is not None:
            return found
        path = super().path(key)
        if check_inside(self.root, os.path.dirname(path)):  # a folder checked once
            if len(self._paths) >= 8192:
                self._paths.clear()
            self._paths[key] = path
        return path

    def key_of(self, url: str) -> str | None:
        # A canonical URL of this root (what every write returns) needs no
        # normalising: only other spellings go through fsspec's.
        prefix = self._url_prefix
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            if rest and "\\" not in rest and not _ODD_PARTS.intersection(rest.split("/")):
                return rest
        return super().key_of(url)

    def exists(self, key: str) -> bool:
        return _is_file(self.path(key))

    def _find_under(self, base: str) -> builtins.list[str]:
        return files_under(base)

    def _head_path(self, path: str) -> bool:
        return _is_file(path)

    def exists_many(self, keys: builtins.list[str]) -> builtins.list[bool]:
        """Per-key ``stat`` (about 1 us each); a folder is listed only when that is
        cheaper: many of the keys are in it and it holds few other entries."""
        if len(keys) < _LIST_FROM:  # few keys: exactly exists() for each, nothing more
            return [exists_about(k, self.exists) for k in keys]
        paths = [self.path(k) for k in keys]
        listed: dict[str, set[str] | None] = {}
        if len(paths) >= _LIST_FROM:
            counts = collections.Counter(os.path.dirname(p) for p in paths)
            for folder, count in counts.items():
                if count >= _LIST_FROM and count * 4 >= _entries_estimate(folder):
                    listed[folder] = _regular_files(folder)
        found = []
        for k, p in zip(keys, paths, strict=True):
            names = listed.get(os.path.dirname(p))
            name = os.path.basename(p)
            if names is None or (name not in names and len(os.fsencode(name)) > NAME_MAX):
                # a name no folder holds raises as exists(k) does: not a miss
                found.append(exists_about(k, self.exists))
            else:
                found.append(name in names)
        return found

    def _cat_or_none(self, path: str) -> bytes | None:
        opened = _open_fd(path)
        if opened is None:
            return None
        fd = opened[0]
        try:
            data = b""
            while len(data) <= _MAX_RECORD:
                chunk = os.read(fd, _MAX_RECORD + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        if len(data) > _MAX_RECORD:
            return b"{}"  # no record is that large: unreadable, so the pair is damaged
        return data

    def small_pair(self, key: str) -> tuple[bytes, Record] | None:
        """A small pair in two reads: the payload's bytes and the record that names them.

        The common read of a small value, without the general path's file
        objects, loops and retries: the record, then the payload, each one
        ``open``, ``fstat`` (regular files only) and ``read``; a final
        symlink is never followed. A pair read before and unchanged since
        is served from memory (two ``lstat``, see ``results/_smallpairs.py``).
        Returns ``None`` for anything else (no record, a payload over 64 KB
        or of another length than its record says, any error): the caller
        then takes the general path, which reads again and says what is
        wrong. The caller checks the digest.
        """
        keep = self._keeps_pairs
        if keep is None:
            keep = self._keeps_pairs = keeps_pairs(self.root)
        return read_small_pair(self.path(key), keep)

    def _digest_or_none(self, path: str) -> str | None:
        stream = _open_regular(path)
        if stream is None:
            return None
        with stream:
            return Record.digest_of_stream(stream)

    def open_reader(self, key: str) -> tuple[BinaryIO, Metadata] | None:
        path = self.path(key)
        # Record first, then the payload: a publish renames in the same order,
        # so the record read vouches for the payload opened after it (an open
        # descriptor keeps its file whatever is renamed later).
        seen: bytes | None = None
        for _ in range(8):
            raw = self._cat_or_none(path + RECORD_SUFFIX)
            stream = _open_regular(path)
            if stream is None:
                return None
            if raw is None:
                return stream, {}
            try:
                return stream, sidecar_metadata(raw)
            except ValueError:
                # A record file that became a writer's spare after it was opened
                # is rewritten in place: read it again, and call it damaged only
                # when the same bytes come twice.
                stream.close()
                if raw == seen:
                    self._parse_sidecar(key, raw)  # raises: the record is damaged
                seen = raw
        raise StorageError(f"the record of {self.url(key)} keeps changing while it is read")

    def quiet_reads(self, key: str) -> AbstractContextManager[None]:
        """Hold off writers of ``key``'s folder (a reader that kept seeing it change)."""
        return folder_lock(os.path.dirname(self.path(key)), timeout=QUIET_READ_WAIT, shared=True)

    def open_writer(self, key: str) -> StorageWriter:
        return LocalWriter(self, self.path(key))

    def delete(self, key: str) -> bool:
        path = self.path(key)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            return False
        # A writer's two renames and a delete never interleave: a delete between
        # them would leave a payload without its record.
        with publish_lock(self.url(key)), folder_lock(folder):
            found = self._delete_pair(key)
            remove_spares(folder)
            return found

    def _remove(self, path: str) -> bool:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        locks = os.path.join(self.root, LOCKS_FOLDER)
        if path.startswith(locks + os.sep):  # a released lock leaves no empty folders
            folder = os.path.dirname(path)
            while folder.startswith(locks):
                try:
                    os.rmdir(folder)
                except OSError:  # not empty (another lock), or gone
                    break
                folder = os.path.dirname(folder)
        return True

    def put_if_absent(self, key: str, data: Any, metadata: Metadata) -> bool:
        """Written whole into a temp file, then hard-linked at ``path`` (``link`` fails if
        the name exists: the check and the create are one step). A reader never sees the
        marker half written, and a write that fails (a full disk) claims nothing."""
        path = self.path(key)
        folder = os.path.dirname(path)
        refuse_long_name(path)
        for _ in range(20):
            # A lock released meanwhile prunes its empty folders up to the locks
            # folder, maybe inside makedirs (FileNotFoundError, or FileExistsError when
            # a folder goes between its mkdir and its check): each time, again.
            try:
                os.makedirs(folder, exist_ok=True)
            except (FileNotFoundError, FileExistsError):
                if os.path.lexists(folder) and not os.path.isdir(folder):
                    raise  # a file where the folder must be: not a race
                continue
            sweep_dead_writers(folder)  # a killed create's temp (at most once a minute)
            tmp = self._temp_names(path)[0]
            try:
                with PreallocatedFile(tmp, fsync=self.fsync) as f:  # O_EXCL create
                    f.write(data)
                created = link_if_absent(tmp, path, data)
            except FileNotFoundError:
                continue  # the folder was pruned in between: again
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            if created and self.fsync:
                fsync_folder(folder)  # the new name survives a power loss too
            return created
        raise FileNotFoundError(f"the folder of {path} keeps disappearing")


_ODD_PARTS = frozenset({"", ".", ".."})
#: Fewer keys of one folder than this are always checked one by one.
_LIST_FROM = 64
# Seconds a reader that kept seeing a pair change waits for the writers to pause.
QUIET_READ_WAIT = 5.0


def _entries_estimate(folder: str) -> int:
    """About how many entries a folder holds, from its size (ext4, xfs, tmpfs: tens
    of bytes an entry); 0 when it is not there."""
    try:
        return os.stat(folder).st_size // 32
    except OSError:
        return 0


def _regular_files(folder: str) -> set[str] | None:
    """The regular files' names in ``folder`` (none when it is missing); None when it
    cannot be listed (refused): the per-key checks then say why."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError:
        return None


def _is_file(path: str) -> bool:
    """Whether a regular file (through symlinks, as ``os.path.isfile``) is at ``path``.

    Nothing there (or a file where a folder should be) is False; a refused
    check (``EACCES``), a name too long, an I/O error raise, as ``read``
    does: a folder that cannot be read is not an empty cache.
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EOVERFLOW):
            return False  # as os.path.isfile: a symlink loop is no file
        raise
    except ValueError:  # a NUL in the path, as os.path.isfile
        return False


#: No record is larger than this (a few hundred bytes, two records at most).
_MAX_RECORD = 64 * 1024


def _open_fd(path: str) -> tuple[int, os.stat_result] | None:
    """Open a regular file for reading: its descriptor and status, or None when nothing is there.

    The last component is not followed if it is a symlink, and a FIFO or a
    device planted in the root is refused instead of blocking a reader or
    feeding it without end.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLocationError(
                f"{short(path)} is a symlink; results never follow links", location=path
            ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeLocationError(
            f"{short(path)} is not a regular file (a FIFO, a device or a folder was put in "
            "its place); remove it and write the result again",
            location=path,
        )
    return fd, st


def _open_regular(path: str) -> BinaryIO | None:
    """:func:`_open_fd` as an unbuffered binary stream that knows its status."""
    opened = _open_fd(path)
    if opened is None:
        return None
    stream = _RegularFile(opened[0], "rb")
    stream.stat = opened[1]  # read_hashed needs it: spares it an fstat
    return stream


class _RegularFile(io.FileIO):
    """An open regular file and its status when it was opened."""

    stat: os.stat_result
