"""Start moto's S3 server (``moto_server``'s arguments), with two changes to moto 5.

* No per-request folder scan: moto answers every request only after listing its
  own package folder and calling ``isdir`` on each of its ~190 entries, twice
  (``list_of_moto_modules``, used to route a request to a service): a third of
  its CPU for a small PUT here (6.0 -> 4.1 ms). The list is a function of the
  installed package, so it is made once.
* An atomic conditional PUT: moto checks ``If-None-Match: *`` / ``If-Match``
  and then stores the object with no lock between, so two concurrent
  conditional creates of one key can both pass the check and both get 200
  when the server is preempted between the two (seen under load: 3 rounds of
  600 of 12 racing creates, tests/test_put_if_absent_race.py). S3 answers one
  200 and 412 to the rest; one lock per key makes moto's check and store one
  step, as there. Every PUT of the key takes it, so an unconditional PUT cannot
  land between a conditional one's check and its store either.

``RESULTKIT_MOTO_CHECK_DELAY`` (seconds, tests only) holds every PUT that passed
its checks before it stores: the window in which moto raced, made wide enough
for a test to race in it every time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import moto.backends as backends

_MODULES = list(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: iter(_MODULES)  # type: ignore[assignment]

from moto.s3.models import S3Backend  # noqa: E402
from moto.s3.responses import S3Response  # noqa: E402
from moto.server import main  # noqa: E402  (after the list is in place)

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

if __name__ == "__main__":
    sys.exit(main())
