"""What tests/moto_launcher.py's cuts must keep: moto's S3 answers, over kept-alive connections.

Raw HTTP on one connection (the launcher keeps it open after each answer),
so a body read too far or too short, a stale cached answer or a lost header
shows up as a wrong status, wrong bytes or a closed connection.
"""

from __future__ import annotations

import http.client
import re
import socket
import uuid

import pytest

import emulators

AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20261126/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=00"
)


@pytest.fixture
def bucket(moto_server: emulators.Emulator) -> str:
    name = f"launcher-{uuid.uuid4().hex[:12]}"
    conn = http.client.HTTPConnection("127.0.0.1", moto_server.port, timeout=10)
    conn.request("PUT", f"/{name}", headers={"Authorization": AUTH})
    assert conn.getresponse().status == 200
    conn.close()
    return name


def request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body or None, headers={"Authorization": AUTH, **headers})
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def test_one_kept_alive_connection_writes_overwrites_refuses_and_reads(moto_server, bucket):
    conn = http.client.HTTPConnection("127.0.0.1", moto_server.port, timeout=10)
    key = f"/{bucket}/k.pkl"
    meta = {"x-amz-meta-rk-digest": "xxh3_128:aa", "x-amz-meta-my_key": "underscored"}
    status, headers, _ = request(conn, "PUT", key, b"first", **meta)
    assert status == 200 and headers.get("connection") != "close"
    sock = conn.sock
    status, headers, _ = request(conn, "HEAD", key)
    assert status == 200 and headers["x-amz-meta-my_key"] == "underscored"
    status, _, _ = request(conn, "PUT", key, b"second", **{"x-amz-meta-rk-digest": "xxh3_128:bb"})
    assert status == 200
    # A conditional create of a key that exists: refused, its body unread by moto.
    status, _, body = request(conn, "PUT", key, b"x" * 70_000, **{"If-None-Match": "*"})
    assert status == 412 and b"PreconditionFailed" in body
    status, headers, body = request(conn, "GET", key)
    assert (status, body) == (200, b"second")
    assert headers["x-amz-meta-rk-digest"] == "xxh3_128:bb" and "x-amz-meta-my_key" not in headers
    assert re.fullmatch(r"[A-Za-z0-9]{52}", headers["x-amzn-requestid"])
    status, headers, body = request(conn, "HEAD", key)
    assert (status, headers["content-length"], body) == (200, "6", b"")
    status, _, _ = request(conn, "GET", f"/{bucket}/missing.pkl")
    assert status == 404
    assert conn.sock is sock  # every answer above came on the first connection
    assert f"/{bucket}/" not in moto_server.log_path.read_text()  # no log line a request


def test_pipelined_requests_each_read_exactly_their_body(moto_server, bucket):
    # Three requests sent at once: each body must end where its Content-Length says.
    def put(key: str, body: bytes, extra: str = "") -> bytes:
        head = f"PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n"
        return f"{head}{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body

    get = f"GET /{bucket}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", moto_server.port), timeout=10) as sock:
        sock.sendall(
            put("a", b"GET / HTTP/1.1\r\n\r\n") + put("a", b"zz", "If-None-Match: *\r\n") + get
        )
        answers = sock.makefile("rb")
        statuses, last = [], b""
        for _ in range(3):
            statuses.append(int(answers.readline().split()[1]))
            length = 0
            while (line := answers.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            last = answers.read(length)
    assert statuses == [200, 412, 200]
    assert last == b"GET / HTTP/1.1\r\n\r\n"


def test_close_and_failures_still_close(moto_server, bucket):
    conn = http.client.HTTPConnection("127.0.0.1", moto_server.port, timeout=10)
    status, headers, _ = request(conn, "PUT", f"/{bucket}/c", b"c", Connection="close")
    assert status == 200 and headers["connection"] == "close"
    # moto raises on a grant it does not know: werkzeug's 500, and the connection closes.
    status, headers, _ = request(conn, "PUT", f"/{bucket}/g", b"g", **{"x-amz-grant-bogus": "id=a"})
    assert status == 500 and headers["connection"] == "close"
    assert conn.sock is None


def test_other_services_and_folded_headers_are_answered(moto_server, bucket):
    conn = http.client.HTTPConnection("127.0.0.1", moto_server.port, timeout=10)
    status, _, _ = request(conn, "GET", "/moto-api/")
    assert status == 200
    # A folded header line goes through the email parser, as in moto.
    raw = (
        f"PUT /{bucket}/f HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n"
        "x-amz-meta-folded: a\r\n  b\r\nContent-Length: 1\r\nConnection: close\r\n\r\nf"
    ).encode()
    with socket.create_connection(("127.0.0.1", moto_server.port), timeout=10) as sock:
        sock.sendall(raw)
        assert sock.makefile("rb").readline().split()[1] == b"200"
    status, headers, _ = request(conn, "HEAD", f"/{bucket}/f")
    assert status == 200 and headers["x-amz-meta-folded"] == "a  b"
