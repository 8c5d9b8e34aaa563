"""An S3 emulator behind a loopback proxy that adds a fixed latency to every request.

Object-store cases must measure what users pay on a real region (requests
and their round trips), not the emulator's CPU: every request waits
``latency_ms`` (20 ms by default, like a nearby region) in the proxy, then
reaches the emulator on 127.0.0.1. The proxy is the tests' ``FaultProxy``
(``tests/fault_proxy.py``) with its ``latency_ms`` set, and the servers are
started as the tests start them (``tests/emulators.py``): one implementation
of each, shared. The proxy runs in a process of its own, so that its CPU
is not counted as the client's (nor competes for the client's GIL).

Run it alone to point other tools at it::

    .venv/bin/python benchmarks/latency_proxy.py --latency-ms 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import emulators  # noqa: E402

__all__ = ["LatentS3", "latent_s3", "DEFAULT_LATENCY_MS"]

DEFAULT_LATENCY_MS = 20.0
SEAWEED_KEY, SEAWEED_SECRET = "resultkit-bench-key", "resultkit-bench-secret-value"


@dataclass
class LatentS3:
    """Where to reach the server: ``url`` (through the proxy) and its ``direct_url``."""

    url: str
    direct_url: str
    latency_ms: float
    server: str
    storage_options: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def latent_s3(latency_ms: float = DEFAULT_LATENCY_MS, server: str = "moto") -> Iterator[LatentS3]:
    """Start ``server`` (``"moto"`` or ``"seaweedfs"``) behind a proxy adding ``latency_ms``."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ):
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory(prefix="rk-bench-s3-") as work:
        if server == "moto":
            emulator = emulators.moto(Path(work))
            options: dict[str, str] = {}
        else:
            emulator = emulators.seaweedfs(Path(work), SEAWEED_KEY, SEAWEED_SECRET)
            options = {"key": SEAWEED_KEY, "secret": SEAWEED_SECRET}
        emulator.start()
        proxy = subprocess.Popen(
            [sys.executable, __file__, "--upstream-port", str(emulator.port)]
            + ["--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proxy.stdout is not None
            url = proxy.stdout.readline().strip()
            if not url.startswith("http://"):
                raise RuntimeError(f"the latency proxy did not start (said {url!r})")
            yield LatentS3(url, emulator.url, latency_ms, server, options)
        finally:
            proxy.terminate()
            proxy.wait(timeout=15)
            emulator.stop()


def serve(upstream_port: int, latency_ms: float) -> None:
    """Serve the proxy until stdin closes or the process is terminated; print its URL first."""
    from fault_proxy import FaultProxy

    with FaultProxy(upstream_port) as proxy:
        proxy.latency_ms = latency_ms
        print(proxy.url, flush=True)
        threading.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=DEFAULT_LATENCY_MS)
    parser.add_argument("--server", choices=["moto", "seaweedfs"], default="moto")
    parser.add_argument("--upstream-port", type=int, help="serve only the proxy, to this port")
    args = parser.parse_args()
    if args.upstream_port:
        serve(args.upstream_port, args.latency_ms)
        return
    with latent_s3(args.latency_ms, args.server) as s3:
        print(f"{args.server} at {s3.direct_url}; with {args.latency_ms:g} ms: {s3.url}")
        with contextlib.suppress(KeyboardInterrupt):
            input("press Enter (or Ctrl-C) to stop\n")


if __name__ == "__main__":
    main()
