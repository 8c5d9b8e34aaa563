"""Start moto's S3 server (``moto_server``'s arguments), with moto 5's S3 made atomic and cheaper.

One change of behaviour, for the tests' sake. **An atomic conditional PUT**:
moto checks ``If-None-Match: *`` / ``If-Match`` and then stores the object with
no lock between, so two concurrent conditional creates of one key can both get
200 when the server is preempted between the two (seen under load: 3 rounds of
600 of 12 racing creates, tests/test_put_if_absent_race.py). S3 answers one 200
and 412 to the rest; one lock per key makes moto's check and store one step, as
there. Every PUT of the key takes it, so an unconditional PUT cannot land
between a conditional one's check and its store either.
``RESULTKIT_MOTO_CHECK_DELAY`` (seconds, tests only) holds every PUT that passed
its checks before it stores: the window in which moto raced, made wide enough
for a test to race in it every time.

The rest cuts pure overhead, S3's answers unchanged (tests/test_moto_launcher.py).
The benchmarks measure requests behind a 20 ms proxy, but moto's one
interpreter spent about 4 ms of CPU on a small request, so 200 checkpoints cost
0.8 s of its core whatever the client did. Savings are moto's user-space
instructions a PUT of resultkit's (six ``x-amz-meta-rk*`` headers) under
callgrind, this launcher without the cut minus this launcher, as a share of the
5.54 M a PUT cost before:

* **No folder scan per request** (before that, 6.0 -> 4.1 ms of CPU a PUT):
  moto listed its package folder and ``isdir``-ed its ~190 entries, twice, to
  route each request; the list depends only on the installed package.
* **Kept-alive connections** (3.5 %, and moto's kernel time 0.4-0.75 ->
  0.15-0.4 ms a PUT; the client opens no connection a request). werkzeug closes
  every connection after one answer, on purpose: it cannot tell where an unread
  body ends. Each request paid a TCP connection, a handler thread and
  werkzeug's drain. Here a body framed by ``Content-Length`` (every S3
  client's) is read exactly (``_Body``), what moto left unread (a refused PUT's
  body) is drained, and the connection serves the next request. HTTP/1.0,
  chunked bodies, ``Connection: close`` and a request moto failed on (500)
  close as before.
* **No log line a request** (2.7 %; ``RESULTKIT_MOTO_LOG_REQUESTS=1`` brings it
  back, errors are always logged).
* **A request's service found once a host** (5.6 %): moto matched the host
  against ~140 URL patterns, fixed at import, on every request.
* **No Flask debug helper** (3.1 %): in debug mode every request's ``files``
  got a class made for it, for a developer's message moto never relies on.
* **A request's headers listed once** (8.0 %): moto lists them about five
  times, each a scan of the whole environ. The list is made again if the
  environ grew (moto's only change to a request's headers: a missing Host).
* **Header lines parsed without the email package** (4.1 %): plain
  ``Name: value`` lines are stored as ``email``'s parser stores them; anything
  else (folded lines, odd names) still goes through it.
* **S3's settings read once** (4.4 %): two ``MOTO_S3_*`` variables read from
  the environment for every object, and ``subdomain_based_buckets`` (five
  patterns, six times a request) kept per host.
* **Accounts' backends without moto's global lock** (1.2 %), for accounts
  already made; **request ids in one** ``random.choices`` call, not 52 (1.7 %).

Together: a PUT 5.54 -> 3.69 M instructions (GET 4.06 -> 2.70, HEAD 3.94 ->
2.63); moto's CPU a request while ``write_many`` writes 200 checkpoints through
the proxy 3.75 -> 1.99 ms with obstore, 4.46 -> 2.68 ms with s3fs (medians of 4
alternated rounds, ``/proc/<pid>/stat``).
"""

from __future__ import annotations

import email.parser
import http.client
import io
import os
import re
import selectors
import string
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import moto.backends as backends

_MODULES = list(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: iter(_MODULES)

import flask.debughelpers  # noqa: E402
import moto.s3.models as s3_models  # noqa: E402
import moto.settings  # noqa: E402
import werkzeug.serving  # noqa: E402
from moto.core.base_backend import BackendDict  # noqa: E402
from moto.core.request import EnvironHeaders  # noqa: E402
from moto.moto_api._internal import mock_random  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
)
from moto.s3.models import S3Backend  # noqa: E402
from moto.s3.responses import S3Response  # noqa: E402
from moto.server import main  # noqa: E402

# --- An atomic conditional PUT -------------------------------------------------

_guard = threading.Lock()
#: (bucket, key) -> [its lock, PUTs holding or waiting for it]; dropped at zero.
_key_locks: dict[tuple[str, str], list[Any]] = {}
_put_object = S3Response.put_object
_store_object = S3Backend.put_object
_check_delay = float(os.environ.get("RESULTKIT_MOTO_CHECK_DELAY") or 0)


def _atomic_put_object(self: S3Response) -> Any:
    name = (self.bucket_name, self.parse_key_name())
    with _guard:
        entry = _key_locks.setdefault(name, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            return _put_object(self)
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _key_locks[name]


def _delayed_store(self: S3Backend, *args: Any, **kwargs: Any) -> Any:
    time.sleep(_check_delay)
    return _store_object(self, *args, **kwargs)


S3Response.put_object = _atomic_put_object  # type: ignore[method-assign]
if _check_delay:
    S3Backend.put_object = _delayed_store  # type: ignore[method-assign]

# --- Kept-alive connections ----------------------------------------------------

#: Per handler thread: ``keeping`` a request's connection, ``failed``: moto failed on it.
_request_state = threading.local()


class _Body(io.RawIOBase):
    """A request's body and nothing after it: the app cannot read into the next request."""

    def __init__(self, rfile: Any, length: int) -> None:
        super().__init__()
        self._rfile = rfile
        self.left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.left)
        if wanted <= 0:
            return 0
        got = int(self._rfile.readinto(memoryview(buffer).cast("B")[:wanted]) or 0)
        self.left -= got
        return got

    def read(self, size: int | None = -1) -> bytes:
        # RawIOBase.read(n) allocates n bytes first: werkzeug's drain asks for 10 MB.
        if size is None or size < 0 or size > self.left:
            size = self.left
        return super().read(size) or b""

    def drain(self) -> bool:
        """Read what the app left unread; False when the client sent less than it declared."""
        while self.left > 0:
            if not self.read(min(self.left, 1 << 20)):
                return False
        return True


def _drain_selector() -> Any:
    # werkzeug's drain after an answer (its only use of selectors): _Body drains a kept request.
    return _NO_DRAIN if getattr(_request_state, "keeping", False) else selectors.DefaultSelector()


_NO_DRAIN = SimpleNamespace(
    register=lambda *a: None, select=lambda timeout=None: [], close=lambda: None
)


_run_wsgi = werkzeug.serving.WSGIRequestHandler.run_wsgi
_send_header = MotoRequestHandler.send_header
_server_log = werkzeug.serving.BaseWSGIServer.log
_dispatch = DomainDispatcherApplication.__call__


def _keep_alive_run_wsgi(self: Any) -> None:
    length = self.headers.get("Content-Length")
    if (
        self.close_connection  # HTTP/1.0, or the client asked to close
        or "Transfer-Encoding" in self.headers
        or (length is not None and not length.strip().isdigit())
    ):
        return _run_wsgi(self)
    body = _Body(self.rfile, int(length or 0))
    connection_file, self.rfile = self.rfile, body
    _request_state.keeping, _request_state.failed = True, False
    try:
        _run_wsgi(self)
    finally:
        self.rfile = connection_file
        _request_state.keeping = False
    if _request_state.failed or not body.drain():
        self.close_connection = True


def _send_header_kept_alive(self: Any, keyword: str, value: str) -> None:
    # werkzeug adds "Connection: close" to every response; a kept-alive request
    # drops it, unless moto failed (werkzeug's 500 then closes, as before).
    if (
        keyword == "Connection"
        and getattr(_request_state, "keeping", False)
        and not _request_state.failed
    ):
        return
    _send_header(self, keyword, value)


def _dispatch_noting_errors(self: DomainDispatcherApplication, environ: Any, respond: Any) -> Any:
    try:
        return _dispatch(self, environ, respond)
    except BaseException:
        _request_state.failed = True  # before werkzeug answers 500
        raise


def _log_noting_errors(self: Any, type: str, message: str, *args: Any) -> None:
    if type == "error":  # werkzeug's "Error on request" once the answer had begun: cut short
        _request_state.failed = True
    _server_log(self, type, message, *args)


werkzeug.serving.selectors = SimpleNamespace(  # type: ignore[assignment]
    DefaultSelector=_drain_selector, EVENT_READ=selectors.EVENT_READ
)
MotoRequestHandler.run_wsgi = _keep_alive_run_wsgi  # type: ignore[method-assign]
MotoRequestHandler.send_header = _send_header_kept_alive  # type: ignore[method-assign]
werkzeug.serving.BaseWSGIServer.log = _log_noting_errors  # type: ignore[method-assign]
DomainDispatcherApplication.__call__ = _dispatch_noting_errors  # type: ignore[method-assign,assignment]

# --- No log line a request -----------------------------------------------------

if os.environ.get("RESULTKIT_MOTO_LOG_REQUESTS") != "1":
    MotoRequestHandler.log_request = lambda self, code="-", size="-": None  # type: ignore[method-assign]

# --- A request's service found once a host -------------------------------------

_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backends_by_host: dict[str | None, Any] = {}


def _cached_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    try:
        return _backends_by_host[host]
    except KeyError:
        backend = _backend_for_host(self, host)
        if backend is not None:  # an unknown host stays moto's (it prints a hint)
            _backends_by_host[host] = backend
        return backend


DomainDispatcherApplication.get_backend_for_host = _cached_backend_for_host  # type: ignore[method-assign]

# --- No Flask debug helper per request -----------------------------------------

flask.debughelpers.attach_enctype_error_multidict = lambda request: None

# --- A request's headers listed once -------------------------------------------

_list_headers = EnvironHeaders.__iter__


def _listed_once(self: EnvironHeaders) -> Iterator[tuple[str, str]]:
    size = len(self.environ)
    listed = self.__dict__.get("_listed")
    if listed is None or listed[0] != size:  # a header added since (moto adds a missing Host)
        listed = self.__dict__["_listed"] = (size, list(_list_headers(self)))
    return iter(listed[1])


EnvironHeaders.__iter__ = _listed_once  # type: ignore[method-assign]

# --- Header lines parsed without the email package -----------------------------

_PLAIN_FIELD = re.compile(rb"[\041-\071\073-\176]+:[^\r\n]*\r?\n\Z")


def _fast_parse_headers(fp: Any, _class: Any = http.client.HTTPMessage) -> Any:
    """``http.client.parse_headers``, the same message, for plain ``Name: value`` lines."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # its limits, its errors
    ended = bool(lines) and lines[-1] in (b"\r\n", b"\n")
    fields = lines[:-1] if ended else lines
    if not all(_PLAIN_FIELD.match(line) for line in fields):
        text = b"".join(lines).decode("iso-8859-1")
        return email.parser.Parser(_class=_class).parsestr(text)
    message = _class()
    for line in fields:
        name, value = line.decode("iso-8859-1").split(":", 1)
        message.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))  # as compat32 parses it
    if ended:
        message.set_payload("")
    return message


http.client.parse_headers = _fast_parse_headers

# --- S3's settings read once ---------------------------------------------------

_custom_endpoints = moto.settings.get_s3_custom_endpoints()
_key_buffer_size = moto.settings.get_s3_default_key_buffer_size()
moto.settings.get_s3_custom_endpoints = lambda: list(_custom_endpoints)
s3_models.get_s3_default_key_buffer_size = lambda: _key_buffer_size
_subdomain_based = S3Response.subdomain_based_buckets
_subdomain_by_host: dict[str, bool] = {}


def _cached_subdomain_based_buckets(request: Any) -> bool:
    host = request.headers.get("host")
    if not host:
        return bool(_subdomain_based(request))
    if host not in _subdomain_by_host:
        _subdomain_by_host[host] = bool(_subdomain_based(request))
    return _subdomain_by_host[host]


S3Response.subdomain_based_buckets = staticmethod(_cached_subdomain_based_buckets)  # type: ignore[method-assign]

# --- Accounts' backends without a global lock ----------------------------------

_account_backend = BackendDict.__getitem__


def _known_account_backend(self: BackendDict[Any], account_id: str) -> Any:
    # An account in the dict was registered with it (moto's reset clears both).
    found = dict.get(self, account_id)
    return found if found is not None else _account_backend(self, account_id)


BackendDict.__getitem__ = _known_account_backend  # type: ignore[method-assign]

# --- Request ids in one call ---------------------------------------------------

_LETTERS_DIGITS = string.ascii_letters + string.digits


def _random_string(length: int = 20, include_digits: bool = True, lower_case: bool = False) -> str:
    pool = _LETTERS_DIGITS if include_digits else string.ascii_letters
    drawn = "".join(mock_random.choices(pool, k=length))
    return drawn.lower() if lower_case else drawn


mock_random.get_random_string = _random_string  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
