"""Storage exceptions -> resultkit's, by one table (as httpx's ``map_exceptions``).

Every backend's client raises its own errors (``OSError``, botocore's
``ClientError``, aiohttp's, azure-core's); the Result turns them into
:class:`~resultkit.errors.StorageError` subclasses naming the location, here
and nowhere else.
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Callable, Iterator

from ..errors import (
    ConfigurationError,
    ResultKitError,
    ResultNotFoundError,
    StorageAccessError,
    StorageError,
)
from ._keymarks import about_key, exists_about, failed_key
from ._location import NAME_MAX, RECORD_SUFFIX, short

__all__ = [
    "map_storage_errors",
    "translate",
    "status_code",
    "precondition_failed",
    "causes",
    "is_missing_container",
    "is_transient",
    "is_conflict",
    "SinkError",
    "about_key",
    "exists_about",
    "failed_key",
]


class SinkError(Exception):
    """Raised through a serializer when the storage it streams into fails.

    Carries the storage's exception so that a full disk or a lost connection
    during a streamed write is reported as a storage error, not as the
    serializer's failure.
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def status_code(exc: BaseException) -> int | None:
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


def causes(exc: BaseException, limit: int) -> Iterator[BaseException]:
    """``exc`` and what caused it, at most ``limit``: a :class:`SinkError`'s storage error,
    else ``__cause__``, else ``__context__``."""
    seen: BaseException | None = exc
    for _ in range(limit):
        if seen is None:
            return
        yield seen
        seen = seen.cause if isinstance(seen, SinkError) else seen.__cause__ or seen.__context__


def precondition_failed(exc: BaseException) -> bool:
    """Whether an error (or what caused it) is an HTTP 412 Precondition Failed."""
    return any(
        status_code(seen) == 412
        or "PreconditionFailed" in repr(seen)
        or "pre-conditions you specified did not hold" in str(seen)
        for seen in causes(exc, 5)
    )


def _not_found(location: str, action: str, exc: BaseException) -> ResultKitError:
    if action in ("read", "check"):
        return ResultNotFoundError(
            f"nothing is stored at {location} (while trying to {action})", location=location
        )
    return StorageError(
        f"could not {action} {location}: the bucket, container or folder does not exist "
        f"({exc}). Create it first.",
        location=location,
    )


def _access(location: str, action: str, exc: BaseException) -> ResultKitError:
    return StorageAccessError(
        f"access denied to {location} while trying to {action} ({type(exc).__name__}). "
        "Check the credentials and permissions for this storage.",
        location=location,
    )


def _no_space(location: str, action: str, exc: BaseException) -> ResultKitError:
    return StorageError(
        f"could not {action} {location}: no space left on the device ({exc}). Free some "
        "space or choose another storage; the value stored before is unchanged.",
        location=location,
    )


def _is_name_too_long(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG


def _name_too_long(location: str, action: str, exc: BaseException) -> ResultKitError:
    # A name read from a disk may carry undecodable bytes as surrogate escapes: its
    # size on the disk, not a UnicodeEncodeError in the middle of the message.
    path = location.partition("://")[2] or location
    longest = max(len(p.encode("utf-8", "surrogateescape")) for p in path.split("/"))
    most = NAME_MAX - len(RECORD_SUFFIX)
    if longest <= most:  # every name fits: the whole path is what the filesystem refused
        return StorageError(
            f"could not {action} {short(location)}: the path is too long for this filesystem "
            f"({len(path.encode('utf-8', 'surrogateescape'))} bytes; most filesystems allow "
            "4096 bytes a path, and the temporary files of a write, beside it, add up to "
            "40 bytes to its last name): use a shorter location (or target template), or a "
            "dir with a shorter path.",
            location=location,
        )
    return StorageError(
        f"could not {action} {short(location)}: the name is too long for this filesystem "
        f"({longest} bytes in its longest part). Most filesystems allow {NAME_MAX} "
        f"bytes a name and 4096 a path, and a name here can have at most "
        f"{most} bytes, since its record is stored beside it as "
        f"NAME{RECORD_SUFFIX}: use a shorter location (or target template).",
        location=location,
    )


def _unsupported(location: str, action: str, exc: BaseException) -> ResultKitError:
    detail = str(exc) or "the storage does not implement this operation"
    return StorageError(
        f"could not {action} {location}: {type(exc).__name__}: {detail}", location=location
    )


def _is_forked_client(exc: BaseException) -> bool:
    # fsspec's async filesystems refuse to run in a process forked after they started.
    return isinstance(exc, RuntimeError) and "not fork-safe" in str(exc)


def _forked_client(location: str, action: str, exc: BaseException) -> ResultKitError:
    return ConfigurationError(
        f"could not {action} {location}: its filesystem client was built in the parent process "
        "before this process was forked, and fsspec's async clients do not survive a fork: "
        "build the filesystem in this process, or let a Result build it (S3Result(...), "
        "from_url(...)), which builds its own in each process"
    )


_MISSING_CONTAINER = (
    "bucket does not exist",
    "nosuchbucket",
    "containernotfound",
    "container does not exist",
)
_CREDENTIAL_ERRORS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "DefaultCredentialsError",
        "CredentialUnavailableError",
        "ClientAuthenticationError",
    }
)
_CREDENTIAL_HINTS = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile in "
    "~/.aws/credentials), or run where an instance role applies, or pass "
    "storage_options={'key': ..., 'secret': ...} ({'anon': True} for a public bucket)",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON file, or run "
    "'gcloud auth application-default login', or pass token=... ('anon' for a public bucket)",
    "az": "pass connection_string=... or account_name=... with credential=..., or set "
    "AZURE_STORAGE_CONNECTION_STRING",
}


def is_missing_container(exc: BaseException) -> bool:
    """Whether a not-found error is about the bucket or container, not the object."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _MISSING_CONTAINER)


def _missing_container(location: str, action: str, exc: BaseException) -> ResultKitError:
    scheme, _, rest = location.partition("://")
    name = rest.split("/", 1)[0]
    kind = "container" if scheme in ("az", "abfs", "abfss") else "bucket"
    return StorageError(
        f"could not {action} {location}: the {kind} {name!r} does not exist. Create it "
        f"first, or fix the {kind} name.",
        location=location,
    )


def _missing_credentials(location: str, action: str, exc: BaseException) -> ResultKitError:
    scheme = location.partition("://")[0]
    scheme = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az"}.get(scheme, scheme)
    hint = _CREDENTIAL_HINTS.get(scheme, "give the storage its credentials")
    return StorageAccessError(
        f"no credentials were found to {action} {location} ({type(exc).__name__}): {hint}",
        location=location,
    )


_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ClientConnectorError",
        "ClientConnectionError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ClientPayloadError",
        "ServiceRequestError",
        "ServiceResponseError",
        "IncompleteRead",
        "RemoteDisconnected",
    }
)


#: S3's 409 to a conditional write that raced another operation on the key: AWS says
#: to retry it (the retry of a create then finds the winner's object: 412, a refusal).
_CONFLICT = "ConditionalRequestConflict"
# Where the code is, never the request's URL (obstore's errors carry it, and with it
# the key: a key named like the code made any failure of its requests a conflict).
_CONFLICT_SAID = (
    re.compile(r"An error occurred \(ConditionalRequestConflict\)"),  # botocore
    re.compile(r" 409 Conflict: .*<Code>ConditionalRequestConflict</Code>", re.DOTALL),  # obstore
)


def _says_conflict(exc: BaseException) -> bool:
    text = str(exc)
    return _CONFLICT in text and any(p.search(text) for p in _CONFLICT_SAID)


def is_conflict(exc: BaseException) -> bool:
    """Whether a failure (or what caused it) is S3's 409 ``ConditionalRequestConflict``."""
    return any(_says_conflict(seen) for seen in causes(exc, 6))


def is_transient(exc: BaseException) -> bool:
    """Whether a failure (or what caused it) may go away if the call is tried again."""
    for seen in causes(exc, 6):
        if isinstance(seen, SinkError):
            continue  # raised from the storage's own error: that one is next
        if isinstance(seen, (FileNotFoundError, PermissionError)) or status_code(seen) in (
            401,
            403,
            404,
        ):
            return False
        if (
            isinstance(seen, (ConnectionError, TimeoutError))
            or status_code(seen) in _TRANSIENT_STATUS
            or type(seen).__name__ in _TRANSIENT_NAMES
            or _says_conflict(seen)
        ):
            return True
    return False


def _is_access(exc: BaseException) -> bool:
    return (
        isinstance(exc, PermissionError)
        or status_code(exc) in (401, 403)
        # gcsfs raises a bare OSError for a 403 (gcsfs.retry.validate_response)
        or (type(exc) is OSError and str(exc).startswith("Forbidden: "))
    )


def _is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == 28  # ENOSPC


_Rule = tuple[Callable[[BaseException], bool], Callable[[str, str, BaseException], ResultKitError]]

#: First match wins; anything else is a plain StorageError.
RULES: list[_Rule] = [
    (lambda e: type(e).__name__ in _CREDENTIAL_ERRORS, _missing_credentials),
    (lambda e: isinstance(e, FileNotFoundError) and is_missing_container(e), _missing_container),
    (lambda e: isinstance(e, FileNotFoundError), _not_found),
    (_is_access, _access),
    (_is_no_space, _no_space),
    (_is_name_too_long, _name_too_long),
    (lambda e: isinstance(e, NotImplementedError), _unsupported),
    (_is_forked_client, _forked_client),
]


def translate(location: str, action: str, exc: BaseException) -> ResultKitError:
    """The resultkit error for a storage exception raised while doing ``action``."""
    if isinstance(exc, SinkError):
        exc = exc.cause
    if isinstance(exc, ResultKitError):
        return exc
    for matches, build in RULES:
        if matches(exc):
            return build(location, action, exc)
    detail = str(exc) or "(no message)"
    return StorageError(
        f"could not {action} {location}: {type(exc).__name__}: {detail}", location=location
    )


@contextlib.contextmanager
def map_storage_errors(location: str, action: str) -> Iterator[None]:
    """Turn storage exceptions raised inside the block into resultkit's, naming ``location``."""
    try:
        yield
    except ResultKitError:
        raise
    except Exception as exc:
        raise translate(location, action, exc) from exc
