"""An S3 emulator behind a loopback proxy that adds a fixed latency to every request.

Object-store cases must measure what users pay on a real region (requests
and their round trips), not the emulator's CPU: every request waits
``latency_ms`` (20 ms by default, like a nearby region) in the proxy, then
reaches the emulator on 127.0.0.1, started as the tests start it
(``tests/emulators.py``). The proxy works on TCP, not HTTP: on each
connection, the first bytes a client sends after the server has answered
(a new request on a kept-alive connection) wait ``latency_ms``, and every
byte after them streams through at once, so a request pays one round trip
whatever its size, and the proxy (asyncio, no parsing, no new upstream
connection per request) costs tens of microseconds a request. The tests'
``FaultProxy`` (HTTP, a thread and an upstream connection per request) costs
about 3 ms of CPU a request, which bounded the concurrent cases. The proxy
runs in a process of its own, so its CPU is not counted as the client's.

Run it alone to point other tools at it::

    .venv/bin/python benchmarks/latency_proxy.py --latency-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
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
def latent_s3(
    latency_ms: float = DEFAULT_LATENCY_MS, server: str = "moto", running_port: int | None = None
) -> Iterator[LatentS3]:
    """Start ``server`` (``"moto"`` or ``"seaweedfs"``) behind a proxy adding ``latency_ms``.

    ``running_port``: a moto server already listening there (the tests' own) is used
    instead of a new one.
    """
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ):
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory(prefix="rk-bench-s3-") as work:
        options: dict[str, str] = {}
        emulator = None
        if running_port is not None:
            port = running_port
        else:
            if server == "moto":
                emulator = emulators.moto(Path(work))
            else:
                emulator = emulators.seaweedfs(Path(work), SEAWEED_KEY, SEAWEED_SECRET)
                options = {"key": SEAWEED_KEY, "secret": SEAWEED_SECRET}
            emulator.start()
            port = emulator.port
        proxy = subprocess.Popen(
            [sys.executable, __file__, "--upstream-port", str(port)]
            + ["--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proxy.stdout is not None
            url = proxy.stdout.readline().strip()
            if not url.startswith("http://"):
                raise RuntimeError(f"the latency proxy did not start (said {url!r})")
            yield LatentS3(url, f"http://127.0.0.1:{port}", latency_ms, server, options)
        finally:
            proxy.terminate()
            proxy.wait(timeout=15)
            if emulator is not None:
                emulator.stop()


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    turn: dict[str, bool],
    mine: str,
) -> None:
    """Copy ``reader`` to ``writer``; a client's first bytes of a request wait ``delay``."""
    try:
        while data := await reader.read(1 << 16):
            if mine == "client" and turn["answered"]:
                turn["answered"] = False
                await asyncio.sleep(delay)  # one round trip a request
            elif mine == "server":
                turn["answered"] = True
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve(upstream_port: int, latency_ms: float) -> None:
    delay = latency_ms / 1000

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_w.close()
            return
        turn = {"answered": True}
        await asyncio.gather(
            _pipe(client_r, server_w, delay, turn, "client"),
            _pipe(server_r, client_w, delay, turn, "server"),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def serve(upstream_port: int, latency_ms: float) -> None:
    """Serve the proxy until the process is terminated; print its URL first."""
    asyncio.run(_serve(upstream_port, latency_ms))


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
