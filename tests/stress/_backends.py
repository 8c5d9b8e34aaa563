"""The backends the stress tier runs on, as plain specs a forked child can rebuild."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import pytest

import emulators
from conftest import SEAWEED_KEY, SEAWEED_SECRET

from ._zygote import build_result

#: The emulator fixture and the modules a zygote preloads, per backend name.
SERVERS = {
    "moto": ("moto_server", ("s3fs",)),
    "seaweedfs": ("seaweed_server", ("s3fs",)),
    "fake-gcs": ("gcs_server", ("gcsfs",)),
    "azurite": ("azurite_server", ("adlfs",)),
    "local": (None, ()),
}


def make_spec(name: str, request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """A fresh, empty location on backend ``name`` (its bucket created), as a spec."""
    fixture, _ = SERVERS[name]
    if fixture is None:
        return {"kind": "local", "dir": str(tmp_path / "root")}
    server = request.getfixturevalue(fixture)
    prefix = f"stress-{uuid.uuid4().hex[:12]}"
    spec: dict[str, Any]
    if name == "moto":
        spec = {"kind": "s3", "bucket": "rk-stress", "prefix": prefix, "endpoint_url": server.url}
    elif name == "seaweedfs":
        spec = {
            "kind": "s3",
            "bucket": "rk-stress",
            "prefix": prefix,
            "endpoint_url": server.url,
            "options": {"key": SEAWEED_KEY, "secret": SEAWEED_SECRET},
        }
    elif name == "fake-gcs":
        spec = {"kind": "gcs", "bucket": "rk-stress", "prefix": prefix, "endpoint_url": server.url}
    else:
        spec = {
            "kind": "azure",
            "container": "rk-stress",
            "prefix": prefix,
            "connection_string": emulators.azurite_connection_string(server.port),
        }
    result = build_result(spec)
    bucket = spec.get("bucket") or spec["container"]
    if not result.fs.exists(bucket):
        with contextlib.suppress(FileExistsError):  # created meanwhile
            result.fs.mkdir(bucket)
    return spec


def preload(name: str) -> tuple[str, ...]:
    return SERVERS[name][1]


def list_all(spec: dict[str, Any]) -> list[str]:
    """Every object or file under the spec's root, resultkit's own names included."""
    result = build_result(spec)
    fs = result.fs
    root = result.storage.root
    fs.invalidate_cache()
    try:
        return sorted(str(p) for p in fs.find(root))
    except FileNotFoundError:
        return []
