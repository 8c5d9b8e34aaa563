"""Opening a URL: storage options, the endpoint's reachability, one result or a folder."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ResultKitError
from ..results import FSSpecResult, from_url
from ._common import CliError, failures, shown

__all__ = ["Target", "open_target", "open_root", "parse_options", "probe_endpoint"]


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
