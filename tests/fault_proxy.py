"""A loopback HTTP proxy that injects faults, per request, in front of a storage emulator.

The client talks HTTP to the proxy, the proxy to the emulator (moto), and
every request that reaches the proxy is recorded with what the proxy did to
it, and how many were in flight at once (``max_in_flight``). Faults are scripted and
consumed in order, each for the next N matching requests (or until
:meth:`FaultProxy.heal`)::

    with FaultProxy(moto_server.port) as proxy:
        proxy.fail(2, status=503)          # the next 2 requests: 503 SlowDown-style error
        proxy.reset(1)                     # the next one: connection reset (TCP RST)
        proxy.reset(1, after_upstream=True)  # forwarded, then the answer is lost
        proxy.delay(1, ms=800)             # the next one waits 800 ms, then is forwarded
        proxy.fail(None, status=403)       # every request: 403 AccessDenied, until heal()
        proxy.latency_ms = 20              # every forwarded request waits 20 ms
        proxy.outage()                     # every request 503 until heal()
        proxy.count(), proxy.count("PUT"), proxy.log, proxy.calls(), proxy.max_in_flight

A fault may be limited to requests of one HTTP method (``method="PUT"``) or
whose path contains a string (``path=".rkmeta"``). Only loopback addresses
are used: the proxy binds 127.0.0.1 and forwards to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FaultProxy", "Fault", "Request", "read_request_body", "s3_result_through"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}

#: S3's error codes for the statuses the tests inject (the body botocore parses).
_S3_CODES = {
    400: ("BadRequest", "Bad request"),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    408: (
        "RequestTimeout",
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
    429: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "Service is unable to handle request."),
    504: ("GatewayTimeout", "Gateway timeout."),
}


def read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The body of the request ``handler`` is serving (chunked or sized)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


@dataclass
class Fault:
    """One scripted fault: what to do to the next ``remaining`` matching requests."""

    kind: str  # "status", "reset" or "delay"
    remaining: int | None  # None: until heal()
    status: int = 503
    code: str | None = None  # the S3 error code in the body (default: by status)
    ms: float = 0.0
    after_upstream: bool = False  # reset: forward first, then lose the answer
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path in path
        )


@dataclass(frozen=True)
class Request:
    """A request that reached the proxy and what the proxy did with it."""

    method: str
    path: str
    outcome: str  # "forwarded", "status:503", "reset", "reset-after-upstream", "delayed"


class FaultProxy:
    """A reverse proxy on 127.0.0.1 that forwards to ``upstream_port`` unless told otherwise."""

    def __init__(self, upstream_port: int, upstream_timeout: float = 60.0) -> None:
        self.upstream_port = upstream_port
        self.upstream_timeout = upstream_timeout
        self.log: list[Request] = []
        #: Latency added to every request that is forwarded (milliseconds).
        self.latency_ms: float = 0.0
        #: The most requests ever in flight at once (since the last clear()).
        self.max_in_flight = 0
        self._in_flight = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                return read_request_body(self)

            def _reset(self) -> None:
                """Close the connection with a TCP RST: the client sees 'connection reset'."""
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()

            def _answer(
                self,
                status: int,
                body: bytes,
                headers: list[tuple[str, str]],
                reason: str | None = None,
            ) -> None:
                self.send_response(status, reason)
                length = str(len(body))
                for k, v in headers:
                    if k.lower() == "content-length":
                        if self.command == "HEAD":  # a HEAD keeps the object's length
                            length = v
                    elif k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, fault: Fault) -> None:
                code, message = _S3_CODES.get(fault.status, ("Error", "Injected fault"))
                code = fault.code or code
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{code}</Code><Message>{message}</Message>"
                    f"<Resource>{self.path}</Resource><RequestId>fault-proxy</RequestId></Error>"
                ).encode()
                self._answer(fault.status, body, [("Content-Type", "application/xml")])

            def _forward(self, body: bytes) -> tuple[int, str, bytes, list[tuple[str, str]]]:
                conn = http.client.HTTPConnection(
                    "127.0.0.1", proxy.upstream_port, timeout=proxy.upstream_timeout
                )
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    if body or self.command in ("PUT", "POST", "PATCH"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    return resp.status, resp.reason, resp.read(), list(resp.getheaders())
                finally:
                    conn.close()

            def _handle(self) -> None:
                with proxy._lock:
                    proxy._in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy._in_flight)
                try:
                    self._serve()
                finally:
                    with proxy._lock:
                        proxy._in_flight -= 1

            def _serve(self) -> None:
                body = self._body()
                fault = proxy._take(self.command, self.path)
                outcome = "forwarded"
                if fault is not None and fault.kind == "status":
                    proxy._record(self.command, self.path, f"status:{fault.status}")
                    self._error(fault)
                    return
                if fault is not None and fault.kind == "reset" and not fault.after_upstream:
                    proxy._record(self.command, self.path, "reset")
                    self._reset()
                    return
                if fault is not None and fault.kind == "reset":  # after_upstream
                    outcome = "reset-after-upstream"
                elif fault is not None and fault.kind == "delay":
                    outcome = f"delayed:{fault.ms:g}ms"
                proxy._record(self.command, self.path, outcome)  # in order of arrival
                wait = (fault.ms if fault is not None else 0.0) + proxy.latency_ms
                if wait:
                    time.sleep(wait / 1000)
                if fault is not None and fault.kind == "reset":  # after_upstream
                    self._forward(body)
                    self._reset()
                    return
                status, reason, data, headers = self._forward(body)
                self._answer(status, data, headers, reason)

            def finish(self) -> None:
                with contextlib.suppress(OSError):  # the connection was reset on purpose
                    super().finish()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that went away (timeout, reset) is not the test's failure

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the script ------------------------------------------------------------------------
    def _add(self, fault: Fault) -> FaultProxy:
        with self._lock:
            self._faults.append(fault)
        return self

    def fail(
        self,
        n: int | None = 1,
        status: int = 503,
        *,
        code: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> FaultProxy:
        """Answer the next ``n`` matching requests (``None``: all) with ``status``, unforwarded."""
        return self._add(Fault("status", n, status=status, code=code, method=method, path=path))

    def reset(
        self,
        n: int | None = 1,
        *,
        after_upstream: bool = False,
        method: str | None = None,
        path: str | None = None,
    ) -> FaultProxy:
        """Reset the connection of the next ``n`` matching requests.

        ``after_upstream``: forward the request first (the server applies it),
        then reset instead of answering, as when an answer is lost on the way.
        """
        return self._add(Fault("reset", n, after_upstream=after_upstream, method=method, path=path))

    def delay(
        self,
        n: int | None = 1,
        ms: float = 100.0,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> FaultProxy:
        """Hold the next ``n`` matching requests for ``ms`` milliseconds, then forward them."""
        return self._add(Fault("delay", n, ms=ms, method=method, path=path))

    def outage(self, kind: str = "status", status: int = 503) -> FaultProxy:
        """Every request fails (``status``, or ``kind="reset"``) until :meth:`heal`."""
        self.heal()
        if kind == "reset":
            return self.reset(None)
        return self.fail(None, status=status)

    def heal(self) -> None:
        """Drop every scripted fault and the added latency: requests are forwarded again."""
        with self._lock:
            self._faults.clear()
        self.latency_ms = 0.0

    def pending(self) -> int:
        """How many scripted faults are still waiting for a request (an outage counts 1)."""
        with self._lock:
            return sum(1 if f.remaining is None else f.remaining for f in self._faults)

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # -- what happened -----------------------------------------------------------------------
    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.log.append(Request(method, path, outcome))

    def clear(self) -> None:
        with self._lock:
            self.log.clear()
            self.max_in_flight = self._in_flight

    def count(self, method: str | None = None, outcome: str | None = None) -> int:
        """Requests that reached the proxy (of one method, with one outcome prefix)."""
        with self._lock:
            return sum(
                1
                for r in self.log
                if (method is None or r.method == method)
                and (outcome is None or r.outcome.startswith(outcome))
            )

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of every request, in order."""
        with self._lock:
            return [(r.method, r.path) for r in self.log]


def s3_result_through(
    proxy: FaultProxy,
    bucket: str,
    engine: str = "s3fs",
    timeout: float | None = None,
    prefix: str | None = None,
) -> Any:
    """An S3Result (``engine``) in a fresh folder of ``bucket`` whose every request crosses
    ``proxy``; retried only by resultkit's quick policy (botocore's and s3fs's retries off),
    its client warm, the proxy's log cleared. ``timeout``: s3fs's read/connect timeout."""
    import uuid

    from resultkit.results import RetryPolicy, S3Result

    options: dict[str, Any] = {"config_kwargs": {"retries": {"total_max_attempts": 1}}}
    if engine == "obstore":
        options = {"key": "testing", "secret": "testing"}
    elif timeout is not None:
        options["config_kwargs"].update(read_timeout=timeout, connect_timeout=timeout)
    r = S3Result(
        bucket,
        prefix=prefix or uuid.uuid4().hex,
        endpoint_url=proxy.url,
        storage_options=options,
        engine=engine,
        retries=RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002),
    )
    if engine == "s3fs":
        r.fs.retries = 1  # s3fs's own retry loop: only resultkit's policy retries
    if not r.fs.exists(bucket):
        r.fs.mkdir(bucket)
    r.write(0, "warm.pkl")
    proxy.heal()
    proxy.clear()
    return r
