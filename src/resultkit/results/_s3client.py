"""S3Result's s3fs client, set up for many small requests: less CPU a request, the same safety.

Measured on the write_many / read_many workload (``benchmarks/``), botocore
spends most of a small request's client CPU outside the request itself:
checking the parameters against the service model, computing a CRC32 of
every PUT body and asking for one on every GET, building the User-Agent
header from a dozen components twice a request, and parsing every response's
``Last-Modified`` with dateutil. resultkit needs none of it: its parameters
are its own, and each payload's XXH3-128 digest travels in the record (signed
SigV4 headers) and is verified before anything is deserialized. So
:func:`client_config` sets these as defaults, each one a botocore ``Config``
option that a user's ``config_kwargs`` still overrides, and :func:`tuned_client`
sets what has no option, once per client.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fsspec.asyn import sync

from ._objectstore import ObjectStoreStorage

__all__ = ["client_config", "tuned_client", "parse_timestamp"]

_TUNING = threading.Lock()


def client_config(config_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The botocore ``Config`` arguments of an S3Result: the user's, over resultkit's defaults.

    * ``max_pool_connections=64``: botocore keeps 10 connections; ``write_many``
      / ``read_many`` / ``exists_many`` keep 32 requests in flight.
    * ``parameter_validation=False``: resultkit builds every parameter itself;
      the server still refuses anything malformed (bucket names and metadata
      are still checked by botocore's own handlers).
    * ``request_checksum_calculation`` / ``response_checksum_validation``
      ``="when_required"`` (botocore >= 1.36): no CRC32 of every body. The
      record's digest covers the payload end to end; over ``http`` the body is
      still covered by the SigV4 signature, and over ``https`` by TLS and the
      signature (botocore signs the body when it sends no checksum).
    * ``user_agent="resultkit/<version>"`` (botocore appends its version): a fixed header
      instead of botocore's, rebuilt twice a request. Not set when the user
      names an application (``user_agent_appid``, ``AWS_SDK_UA_APP_ID``).

    Example:
        >>> config = client_config({"max_pool_connections": 8, "user_agent": None})
        >>> config["max_pool_connections"], config["user_agent"], config["parameter_validation"]
        (8, None, False)
    """
    from botocore.config import Config

    from .. import __version__

    if config_kwargs is not None and not isinstance(config_kwargs, Mapping):
        from ..errors import ConfigurationError

        raise ConfigurationError(
            f"storage_options config_kwargs must be a dict of botocore Config options, got "
            f"{type(config_kwargs).__name__} {config_kwargs!r}; e.g. "
            "config_kwargs={'max_pool_connections': 32}"
        )
    config = dict(config_kwargs or {})
    known = getattr(Config, "OPTION_DEFAULTS", {})
    accepted = set(known) | _aio_config_options()
    unknown = sorted(set(config) - accepted) if known else []
    if unknown:  # botocore would refuse it only at the first request, deep in a StorageError
        from .._suggest import did_you_mean
        from ..errors import ConfigurationError

        raise ConfigurationError(
            f"storage_options config_kwargs: {unknown[0]!r} is not a botocore Config option"
            f"{did_you_mean(unknown[0], accepted)}; the options: {', '.join(sorted(accepted))}"
        )
    defaults: dict[str, Any] = {"max_pool_connections": 64, "parameter_validation": False}
    for option in ("request_checksum_calculation", "response_checksum_validation"):
        if option in known:  # botocore >= 1.36
            defaults[option] = "when_required"
    names_app = "user_agent_appid" in config or os.environ.get("AWS_SDK_UA_APP_ID")
    if not names_app:
        defaults["user_agent"] = f"resultkit/{__version__}"  # botocore appends its own
    for option, value in defaults.items():
        config.setdefault(option, value)
    return config


def _aio_config_options() -> set[str]:
    """aiobotocore's own ``AioConfig`` arguments (``connector_args``, ...), which s3fs passes on."""

    try:
        from aiobotocore.config import AioConfig
    except ImportError:  # pragma: no cover - s3fs always brings it
        return set()
    params = inspect.signature(AioConfig.__init__).parameters
    return {n for n, p in params.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}


def tuned_client(fs: Any) -> Any:
    """The aiobotocore client of ``fs`` (an s3fs filesystem), set up once for small requests.

    * Small PUTs go without ``Expect: 100-continue`` (botocore adds it to every
      body it streams): waiting for "100 Continue" is one more round trip a PUT.
    * Response timestamps (``Last-Modified``) are parsed by :func:`parse_timestamp`
      (same values, same time zone objects) instead of dateutil, unless the
      user passed their own botocore ``session``.
    """
    client = getattr(fs, "_s3", None)
    if client is None:
        client = sync(fs.loop, fs.set_session)
    if not getattr(client, "_resultkit_tuned", False):
        with _TUNING:  # the first requests of a write_many come from many threads at once
            if not getattr(client, "_resultkit_tuned", False):
                client.meta.events.register_last("before-call.s3", _drop_expect)  # after botocore's
                session = getattr(fs, "session", None)
                if session is not None and not fs.storage_options.get("session"):
                    session.get_component("response_parser_factory").set_parser_defaults(
                        timestamp_parser=parse_timestamp
                    )
                client._resultkit_tuned = True
    return client


def _drop_expect(params: dict[str, Any], **kwargs: Any) -> None:
    """botocore ``before-call`` handler: no ``Expect: 100-continue`` on a small PUT."""
    from botocore.utils import determine_content_length

    size = determine_content_length(params.get("body") or b"")
    if size is not None and size <= ObjectStoreStorage.single_request_limit:
        params.get("headers", {}).pop("Expect", None)


_HTTP_DATE = re.compile(
    r"(?:[A-Z][a-z]{2}, )?(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT\Z"
)
_MONTHS = {
    month: number
    for number, month in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def parse_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, without dateutil for the form of every GET and HEAD.

    ``Last-Modified: Wed, 26 Nov 2026 01:02:03 GMT`` gives exactly what
    :func:`botocore.utils.parse_timestamp` gives (the same instant, with
    dateutil's ``tzutc``) in a twentieth of the time; anything else (listings'
    ISO 8601, whose time zone object botocore picks by the machine's zone) goes
    to botocore's parser.

    Example:
        >>> parse_timestamp("Wed, 26 Nov 2026 01:02:03 GMT").isoformat()
        '2026-11-26T01:02:03+00:00'
    """
    found = _HTTP_DATE.match(value) if isinstance(value, str) else None
    if found:
        day, month, year, hour, minute, second = found.groups()
        try:
            return datetime(
                int(year),
                _MONTHS[month],
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=_utc(),
            )
        except (KeyError, ValueError):
            pass  # no such month or day: botocore's parser words the error
    from botocore.utils import parse_timestamp as botocore_parse

    parsed: datetime = botocore_parse(value)
    return parsed


@functools.cache
def _utc() -> Any:
    """dateutil's UTC, as botocore's parser gives it (dateutil comes with botocore)."""
    from dateutil.tz import tzutc

    return tzutc()


#: Top-level storage options s3fs passes on past its own arguments (fsspec's caches,
#: and aiobotocore's session: s3fs builds ``AioSession(**the rest)``).
_PASSED_ON = frozenset(
    {"use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache"}
)


@functools.lru_cache(maxsize=1)
def s3fs_options() -> frozenset[str]:
    """The top-level storage options an s3fs filesystem takes (any other fails late)."""
    import s3fs
    from aiobotocore.session import AioSession

    named: set[str] = set(_PASSED_ON)
    for function in (s3fs.S3FileSystem.__init__, AioSession.__init__):
        for name, param in inspect.signature(function).parameters.items():
            if name != "self" and param.kind is param.POSITIONAL_OR_KEYWORD:
                named.add(name)
    return frozenset(named)


def check_s3fs_options(options: Mapping[str, Any]) -> None:
    """Refuse a storage option s3fs would pass to aiobotocore's session, to fail there later."""
    try:
        accepted = s3fs_options()
    except (ImportError, TypeError, ValueError):  # pragma: no cover - s3fs missing: said elsewhere
        return
    unknown = sorted(set(options) - accepted)
    if not unknown:
        return
    from .._suggest import did_you_mean
    from ..errors import ConfigurationError

    name = unknown[0]
    if name == "engine":
        raise ConfigurationError(
            "engine= is an S3Result argument, not an s3fs storage option: "
            "S3Result('bucket', prefix='...', engine='obstore')"
        )
    raise ConfigurationError(
        f"storage option {name!r} is not one s3fs takes{did_you_mean(name, accepted)} (it would "
        f"fail only at the first request); the options: {', '.join(sorted(accepted))}"
    )
