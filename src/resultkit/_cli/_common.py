"""What every command shares: opening a URL, one-line errors, sizes, ages and output."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape

from ..errors import (
    ConfigurationError,
    ResultCorruptError,
    ResultKitError,
    ResultNotFoundError,
    StorageError,
    UnsafeLocationError,
)
from ..results import FSSpecResult, from_url
from ..results._errors import map_storage_errors
from ..results._location import short

__all__ = [
    "OK",
    "PROBLEMS",
    "USAGE",
    "CliError",
    "Output",
    "Target",
    "open_target",
    "parse_options",
    "parse_size",
    "parse_duration",
    "human_size",
    "human_age",
    "shown",
    "guarded",
]

#: Exit codes: everything fine / problems found / usage or access error.
OK, PROBLEMS, USAGE = 0, 1, 2
#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130

_OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")


class CliError(Exception):
    """A failure to report in one line, with the exit code to leave with."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


def shown(text: str, limit: int = 300) -> str:
    """``text`` safe to print: control characters escaped, rich markup escaped."""
    return escape(short(str(text), limit))


class Output:
    """Where a command writes: rich text on stdout, or one JSON document with ``--json``."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        # Long URLs and digests stay on one line; no colour codes when piped.
        self.console = Console(soft_wrap=True, highlight=False)
        self.errors = Console(stderr=True, soft_wrap=True, highlight=False)

    def line(self, text: str = "") -> None:
        if not self.as_json:
            self.console.print(text)

    def json(self, document: Any) -> None:
        sys.stdout.write(
            json.dumps(document, indent=2, default=_jsonable, ensure_ascii=True) + "\n"
        )

    @property
    def interactive(self) -> bool:
        return not self.as_json and self.errors.is_terminal


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``K=V`` strings as storage options; ``true``/``false``, numbers and JSON become values.

    >>> parse_options(["anon=true", "client_kwargs={\\"region_name\\": \\"eu-west-1\\"}"])
    {'anon': True, 'client_kwargs': {'region_name': 'eu-west-1'}}
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--storage-option {pair!r} is not K=V; e.g. --storage-option anon=true")
        options[key.strip()] = _option_value(value)
    return options


def _option_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text[:1] in "{[":
        try:
            return json.loads(text)
        except ValueError:
            raise CliError(f"--storage-option value {text!r} is not valid JSON") from None
    return text


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.I)
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def parse_size(text: str) -> int:
    """``10GB`` (powers of 1000) or ``10GiB`` (powers of 1024) as a number of bytes.

    >>> parse_size("10GB"), parse_size("1.5KiB"), parse_size("0")
    (10000000000, 1536, 0)
    """
    found = _SIZE.match(text)
    if found is None:
        raise CliError(f"--max-size {text!r} is not a size; write e.g. 500MB, 10GB or 2GiB")
    number, unit = float(found.group(1)), found.group(2).lower()
    base = 1024 if "i" in unit else 1000
    power = " kmgtp".index(unit[0]) if unit[:1] in _UNITS and unit[:1] else 0
    return int(number * base**power)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.I)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` as seconds.

    >>> parse_duration("30d"), parse_duration("90m")
    (2592000.0, 5400.0)
    """
    found = _DURATION.match(text)
    if found is None:
        raise CliError(f"--older-than {text!r} is not a duration; write e.g. 30d, 12h, 90m or 2w")
    return float(found.group(1)) * _SECONDS[found.group(2).lower()]


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, with an ``s`` unless ``n`` is 1 (``1 entry`` is spelt by the caller).

    >>> plural(1, "result"), plural(3, "problem")
    ('1 result', '3 problems')
    """
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def human_size(n: int | None) -> str:
    """Bytes in the largest unit that keeps a number >= 1 (powers of 1000).

    >>> human_size(999), human_size(1234567), human_size(None)
    ('999 B', '1.2 MB', '-')
    """
    if n is None:
        return "-"
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.95 or unit == "PB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def human_age(when: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``when`` was, in one unit (``42s``, ``5m``, ``3h``, ``12d``).

    >>> from datetime import datetime, timedelta, timezone
    >>> now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    >>> human_age(now - timedelta(hours=3), now), human_age(now + timedelta(days=2), now)
    ('3h', 'in 2d')
    """
    if when is None:
        return "-"
    now = now or datetime.now(timezone.utc)
    seconds = (now - when).total_seconds()
    ahead, seconds = seconds < 0, abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)}{unit}"
            break
    else:
        text = f"{int(seconds)}s"
    return f"in {text}" if ahead else text


@dataclass
class Target:
    """A URL opened: the Result rooted at its folder and, for one stored result, its key."""

    url: str
    result: FSSpecResult  # rooted at the URL itself (a folder) or at its parent folder
    name: str | None  # the result's key under ``result`` when the URL names one result

    def key_url(self, key: str) -> str:
        return self.result.storage.url(key)


def _storage_options(url: str, endpoint_url: str | None, pairs: Sequence[str]) -> dict[str, Any]:
    options = parse_options(pairs)
    protocol = url.partition("://")[0] if "://" in url else "file"
    if endpoint_url:
        if protocol in ("s3", "s3a", "gs", "gcs"):
            options["endpoint_url"] = endpoint_url
        elif protocol in ("az", "abfs", "abfss"):
            raise CliError(
                f"--endpoint-url does not apply to {protocol}:// ({url}); give Azure its "
                "endpoint with --storage-option connection_string=... (or account_name=...)"
            )
        else:
            raise CliError(
                f"--endpoint-url applies to s3:// and gs:// URLs, not to {shown(url)}; drop it"
            )
    if protocol in ("s3", "s3a"):
        # One attempt inside botocore: resultkit retries transient failures
        # itself, so a dead endpoint fails in seconds, not minutes.
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
        config.setdefault("connect_timeout", 5)
        options["config_kwargs"] = config
    return options


def _endpoint_of(options: dict[str, Any]) -> str | None:
    """The server a URL's options name (``endpoint_url``, an Azure ``BlobEndpoint``), if any."""
    if isinstance(options.get("endpoint_url"), str):
        return str(options["endpoint_url"])
    found = re.search(r"BlobEndpoint=([^;]+)", str(options.get("connection_string") or ""))
    return found.group(1) if found else None


_REACHED: set[str] = set()


def probe_endpoint(endpoint: str, url: str) -> None:
    """Refuse at once an endpoint nobody answers on.

    The storage clients retry a refused connection for a minute (gcsfs) or
    three (Azure) before they give up; a wrong port or a stopped server
    deserves one line now.
    """
    parsed = urlsplit(endpoint)
    if endpoint in _REACHED or not parsed.hostname:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=5).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CliError(
            f"{shown(url)}: cannot reach {shown(endpoint)} ({reason}): check the URL given to "
            "--endpoint-url (or the connection string) and that the server is up"
        ) from None
    _REACHED.add(endpoint)


def open_root(url: str, endpoint_url: str | None = None, pairs: Sequence[str] = ()) -> FSSpecResult:
    """The Result rooted at ``url`` (a folder, a bucket, a prefix)."""
    if not isinstance(url, str) or not url.strip():
        raise CliError("a URL or path is needed, e.g. ~/.resultkit/results or s3://bucket/prefix")
    options = _storage_options(url, endpoint_url, pairs)
    endpoint = _endpoint_of(options)
    if endpoint is not None:
        probe_endpoint(endpoint, url)
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    try:
        return from_url(url, retries=2, **options)
    except ResultKitError as exc:
        raise CliError(f"{shown(url)}: {exc}") from None
    except Exception as exc:  # an fsspec protocol that is not installed, a bad option
        raise CliError(f"cannot open {shown(url)}: {type(exc).__name__}: {exc}") from None


def open_target(
    url: str, endpoint_url: str | None = None, pairs: Sequence[str] = (), *, single: bool = False
) -> Target:
    """Open ``url`` as one stored result if something is stored there, else as a folder.

    With ``single``, the URL must name one result; nothing stored there is an error.
    """
    if isinstance(url, str) and url and "://" not in url:
        url = os.path.abspath(os.path.expanduser(url)) + ("/" if url.endswith("/") else "")
    endpoint = _endpoint_of(_storage_options(url, endpoint_url, pairs))  # errors name the URL
    if endpoint is not None:
        probe_endpoint(endpoint, url)
    stripped = url.rstrip("/")
    folder, sep, name = stripped.rpartition("/")
    if sep and name and not folder.endswith(":/") and not url.endswith("/"):
        parent = open_root(folder or "/", endpoint_url, pairs)
        try:
            with failures(url, "check"):
                found = parent.exists(name)
        except CliError:
            raise
        if found:
            return Target(url, parent, name)
        if single:
            hint = " (it is a folder; name a stored result in it)" if os.path.isdir(url) else ""
            raise CliError(f"nothing is stored at {shown(url)}{hint}")
    elif single:
        raise CliError(f"{shown(url)} names a folder or bucket; name a stored result in it")
    return Target(url, open_root(url, endpoint_url, pairs), None)


@contextmanager
def failures(url: str, action: str) -> Iterator[None]:
    """Storage failures inside the block as one-line :class:`CliError` naming ``url``."""
    try:
        with map_storage_errors(url, action):
            yield
    except CliError:
        raise
    except (ResultNotFoundError, UnsafeLocationError, ConfigurationError, StorageError) as exc:
        raise CliError(one_line(exc)) from None
    except ResultCorruptError as exc:
        raise CliError(one_line(exc), PROBLEMS) from None


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (client libraries put newlines in theirs)."""
    text = " ".join(str(exc).split())
    if "storage_options=" in text:
        text += " (on the command line: --storage-option K=V)"
    if any(n in text for n in ("EndpointConnectionError", "ConnectTimeout", "Cannot connect")):
        text += "; check the URL given to --endpoint-url and that the server is up"
    return escape(text if len(text) < 600 else text[:597] + "...")


def guarded(run: Any, args: Any, out: Output) -> int:
    """Run a command; any failure becomes one line on stderr and an exit code, never a traceback."""
    try:
        return int(run(args, out))
    except CliError as exc:
        out.errors.print(f"resultkit {args.command}: {exc}")
        return exc.code
    except KeyboardInterrupt:
        out.errors.print(f"resultkit {args.command}: interrupted")
        return INTERRUPTED
    except ResultCorruptError as exc:
        out.errors.print(f"resultkit {args.command}: {one_line(exc)}")
        return PROBLEMS
    except ResultKitError as exc:
        out.errors.print(f"resultkit {args.command}: {one_line(exc)}")
        return USAGE
    except Exception as exc:  # a storage client's own error that escaped the mapping
        url = getattr(args, "url", None) or getattr(args, "urls", ["?"])
        where = url if isinstance(url, str) else " ".join(url)
        out.errors.print(
            f"resultkit {args.command}: {shown(where)}: {type(exc).__name__}: {one_line(exc)}"
        )
        return USAGE
