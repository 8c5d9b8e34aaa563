"""What every command shares: opening a URL, one-line errors, sizes, ages and output."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

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
from ..results._errors import map_storage_errors
from ..results._location import short

__all__ = [
    "OK",
    "PROBLEMS",
    "USAGE",
    "CliError",
    "Output",
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
