"""A real HTTP reverse proxy on 127.0.0.1 that records every request it forwards.

Used to count the requests a backend sends (one HEAD for ``exists``...)
without mocking anything: the client talks HTTP to the proxy, the proxy to
the emulator.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}


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


class CountingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[tuple[str, str]] = []
        #: Seconds each request waits before it is forwarded (a slow link).
        self.delay = 0.0
        #: The most requests ever in flight at once (since the last clear()).
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                return read_request_body(self)

            def _forward(self) -> None:
                with proxy._lock:
                    proxy._in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy._in_flight)
                try:
                    self._relay()
                finally:
                    with proxy._lock:
                        proxy._in_flight -= 1

            def _relay(self) -> None:
                body = self._body()
                proxy.requests.append((self.command, self.path))
                if proxy.delay:
                    time.sleep(proxy.delay)  # the link's latency, not a synchronisation
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if body or self.command in ("PUT", "POST", "PATCH"):
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                if self.command == "HEAD":
                    self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        self.requests.clear()
        with self._lock:
            self.max_in_flight = self._in_flight

    def methods(self) -> list[str]:
        return [m for m, _ in self.requests]
