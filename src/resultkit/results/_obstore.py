"""The optional obstore engine of S3: small-object requests sent by obstore's Rust client.

``S3Result(..., engine="obstore")`` sends the requests of small values
(PUT with the record as metadata, GET, HEAD, the conditional create of
single-flight locks) through `obstore <https://developmentseed.org/obstore/>`_
instead of s3fs/aiobotocore. Measured on this project's workload (many small
checkpoints at once, ``benchmarks/object_engines.py``): about a fifth of the
client CPU a request, so several times the throughput of ``write_many`` /
``read_many`` when the client's CPU is the bound. Everything else (large
values, server-side copies, listings, deletes, sweeps) stays on s3fs, which
talks to the same bucket.

obstore is not fork-safe: its requests run on a runtime of Rust threads that
a fork does not copy, so a process forked after its parent sent a request
through obstore would wait forever. Such a process gets a ConfigurationError
at its first request instead (start workers with ``spawn`` or ``forkserver``,
or keep ``engine="s3fs"`` there).

Credentials come from ``storage_options`` (``key``, ``secret``, ``token``)
or the ``AWS_*`` environment variables; for profiles or instance roles keep
the default engine. Retries are the Result's :class:`RetryPolicy` alone
(obstore's own are turned off), and obstore's errors become the built-in
ones resultkit maps (not found, access denied, transient).
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..errors import ConfigurationError
from ._ranged import RangedObject, ReplacedWhileRead

__all__ = ["ObstoreRequests"]

#: Whether this process's own requests started obstore's runtime (its Rust threads).
_runtime_started = False
#: The parent's pid, in a process forked while that parent ran obstore's runtime
#: (anyone's use of it). The parent sets it at the fork, so only it is checked.
_forked_from: int | None = None
_runtime_seen_at_fork: int | None = None


def _runtime_threads() -> bool:
    """Whether this process runs tokio's threads (obstore's runtime, whoever started it)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:  # no /proc: only resultkit's own requests are known (_runtime_started)
        return False
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm", "rb") as comm:
                if comm.read().startswith(b"tokio-"):
                    return True
        except OSError:
            continue
    return False


def _before_fork() -> None:
    global _runtime_seen_at_fork
    # A forked child's runtime is its parent's, already broken: so is its children's.
    inherited = _forked_from is not None
    started = _runtime_started or inherited or ("obstore" in sys.modules and _runtime_threads())
    _runtime_seen_at_fork = os.getpid() if started else None


def _after_fork_in_child() -> None:
    global _forked_from
    if _runtime_seen_at_fork is not None:
        _forked_from = _runtime_seen_at_fork


if hasattr(os, "register_at_fork"):
    # A fork copies one thread, never the runtime's: a child's request on it would wait
    # forever (and can corrupt the event registrations it shares with the parent).
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _requests_allowed() -> None:
    """Refuse a request in a process forked after obstore's runtime started in its parent."""
    global _runtime_started
    if _forked_from is not None:
        raise ConfigurationError(
            f"engine='obstore' cannot send requests in a process forked after obstore ran in "
            f"its parent: use multiprocessing.get_context('spawn') or 'forkserver', or "
            f"engine='s3fs' here (obstore's runtime does not survive a fork: this process, "
            f"pid {os.getpid()}, forked from {_forked_from}, would wait forever)"
        )
    _runtime_started = True


_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>(\w+)</Code>")
#: The error codes of a conditional create's refusal (the conflict is tried again).
_REFUSALS = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_TRANSIENT_TEXT = ("error sending request", "timed out", "connection", "broken pipe")


def _plain(exc: BaseException) -> BaseException:
    """obstore's error as the built-in exception resultkit's error table understands."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    text = str(exc).split("\n\nDebug source", 1)[0].strip()[:400]
    if isinstance(exc, FileNotFoundError) or type(exc).__name__ == "NotFoundError":
        return FileNotFoundError(text)
    if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)):
        return PermissionError(text)
    found = _STATUS.search(text)
    status = int(found.group(1)) if found else None
    if (status is not None and (status >= 500 or status in (408, 429))) or (
        status is None and any(t in text.lower() for t in _TRANSIENT_TEXT)
    ):
        return ConnectionError(text)
    return OSError(text)


class ObstoreRequests:
    """PUT / GET / HEAD of one bucket through obstore; the store is built on first use."""

    def __init__(self, bucket: str, options: Mapping[str, Any]) -> None:
        try:
            import obstore  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                "engine='obstore' needs obstore: pip install 'resultkit[obstore]'"
            ) from exc
        client = dict(options.get("client_kwargs") or {})
        self.bucket = bucket
        self._config: dict[str, Any] = {
            "endpoint": options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL"),
            "region": client.get("region_name") or os.environ.get("AWS_DEFAULT_REGION"),
            "access_key_id": options.get("key"),
            "secret_access_key": options.get("secret"),
            "session_token": options.get("token"),
        }
        self._store: Any = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        store = self._store
        if store is None:
            with self._lock:
                if self._store is None:
                    from obstore.store import S3Store

                    config = {k: v for k, v in self._config.items() if v}
                    endpoint = str(config.get("endpoint", ""))
                    self._store = S3Store(
                        self.bucket,
                        **config,
                        virtual_hosted_style_request=False if endpoint else None,
                        client_options={
                            "allow_http": endpoint.startswith("http://"),
                            "timeout": "60s",
                            "connect_timeout": "10s",
                        },
                        # the Result's RetryPolicy retries; two layers would multiply
                        retry_config={
                            "max_retries": 0,
                            "retry_timeout": datetime.timedelta(seconds=60),
                        },
                    )
                store = self._store
        return store

    def _key(self, path: str) -> str:
        bucket, _, key = path.partition("/")
        if bucket != self.bucket:  # pragma: no cover - every path is under the root
            raise ValueError(f"{path} is not in bucket {self.bucket}")
        return key

    def put(self, path: str, data: bytes, metadata: dict[str, str], create: bool) -> bool:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        _requests_allowed()
        try:
            obstore.put(
                self.store,
                self._key(path),
                data,
                attributes=dict(metadata),
                mode="create" if create else "overwrite",
                use_multipart=False,
            )
        except (AlreadyExistsError, PreconditionError) as exc:
            code = _CODE.search(str(exc))
            if create and (code is None or code.group(1) in _REFUSALS):
                return False  # refused: the caller asks whose object is there
            # obstore calls any 409 "already exists": one that says something else
            # (OperationAborted...) is an error, as botocore raises it for s3fs.
            # A plain write has no condition to refuse it: a 409 conflict (or a 412)
            # is a failure to raise, never a write that "succeeded" storing nothing.
            raise _plain(exc) from None
        except Exception as exc:
            raise _plain(exc) from None
        return True

    def get(
        self,
        path: str,
        range_limit: int | None = None,
        ranged_object: Callable[[str, int, Any], RangedObject] | None = None,
    ) -> tuple[bytes | RangedObject, Mapping[str, str]] | None:
        """The object's bytes and metadata; past ``range_limit`` bytes, a
        :class:`RangedObject` made by ``ranged_object(path, size, fetch)``."""
        import obstore

        _requests_allowed()
        try:
            got = obstore.get(self.store, self._key(path))
            size = int(got.meta["size"])
            etag = got.meta.get("e_tag")
            if range_limit is not None and ranged_object and size > range_limit and etag:
                # The body is dropped unread; ranges of exactly this version follow.
                fetch = self._range_fetcher(path, etag)
                return ranged_object(path, size, fetch), dict(got.attributes)
            return bytes(got.bytes()), dict(got.attributes)
        except Exception as exc:
            error = _plain(exc)
            if isinstance(error, FileNotFoundError):
                return self._missing(error)
            raise error from None

    def _range_fetcher(self, path: str, etag: str) -> Callable[[int, int], Awaitable[bytes]]:
        key = self._key(path)

        async def fetch(start: int, end: int) -> bytes:
            import obstore

            _requests_allowed()
            try:
                got = await obstore.get_async(
                    self.store, key, options={"range": (start, end), "if_match": etag}
                )
                return bytes(await got.bytes_async())
            except Exception as exc:
                if type(exc).__name__ in ("PreconditionError", "NotFoundError") or isinstance(
                    exc, FileNotFoundError
                ):
                    raise ReplacedWhileRead(f"{path} was overwritten or deleted") from None
                raise _plain(exc) from None

        return fetch

    def head(self, path: str) -> Mapping[str, str] | None:
        import obstore

        _requests_allowed()
        try:
            return dict(obstore.get(self.store, self._key(path), options={"head": True}).attributes)
        except Exception as exc:
            error = _plain(exc)
            if isinstance(error, FileNotFoundError):
                return self._missing(error)
            raise error from None

    @staticmethod
    def _missing(error: FileNotFoundError) -> None:
        from ._errors import is_missing_container

        if is_missing_container(error):
            raise error
        return None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None  # holds a connection pool: rebuilt on the worker
        state.pop("_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
