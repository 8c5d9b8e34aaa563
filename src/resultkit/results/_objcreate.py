"""``put_if_absent`` on object stores: one conditional create, settled by its nonce.

A client may send a create again when its answer was lost (aiohttp on a
reused connection, botocore's and s3fs's retries): the object the first
attempt made then refuses the second, and a won race would read as lost (a
lock nobody holds until its lease ends). So each call's creates carry one
nonce in their metadata, and a refused create whose object carries that
nonce won. The cost, one HEAD, is paid only by refused creates. A create
that failed transiently (no answer, a 503) is settled the same way when the
object is there.

A refusal with nothing there is no refusal: the object was deleted since (a
lock released), or the store answered 409 ``ConditionalRequestConflict`` (S3,
when the create raced another operation on the key; AWS says to retry it),
which a client may report as "already exists". These, and a transient failure
with nothing there, are tried again with the same nonce, up to
:data:`CONFLICT_TRIES` creates a call: whichever of them made the object, it
carries this call's nonce, so a retry refused by an earlier attempt's object
still answers True. Only a create that never got an answer can land after
the call has given up (its error says so); that was so before any retry.
"""

from __future__ import annotations

import errno
import random
import time
from collections.abc import Callable

from ._errors import is_conflict, is_transient

__all__ = ["create_settled", "CONFLICT_TRIES"]

#: Creates a call sends while each is refused with nothing there, answered 409, or
#: failed transiently with nothing there.
CONFLICT_TRIES = 5
#: The first wait before trying again (seconds); doubled each time, with jitter.
_FIRST_WAIT = 0.05


def create_settled(
    put: Callable[[], bool], owner: Callable[[], str | None], nonce: str, where: str
) -> bool:
    """Whether this call created the object: ``put()`` sends the conditional create
    (True: created, False: refused); ``owner()`` is the nonce of the object there (""
    for one without, None for nothing there); ``nonce`` is the one every create of this
    call carries; ``where`` names the object in an error.
    """
    for attempt in range(CONFLICT_TRIES):
        last = attempt + 1 == CONFLICT_TRIES
        try:
            if put():
                return True
        except Exception as exc:
            if not is_conflict(exc):
                if not is_transient(exc):
                    raise
                found = _owner_or_unknown(owner, where)
                if found is not None:
                    return found == nonce
                if last:
                    raise ConnectionError(
                        f"the conditional create of {where} failed {CONFLICT_TRIES} times "
                        f"and nothing was there after it (last: {exc}); a create that got "
                        "no answer may still land, so whether it will create the object is "
                        "unknown: look at the object, or try again later"
                    ) from exc
        else:
            found = _owner_or_unknown(owner, where)
            if found is not None:
                return found == nonce
        if not last:
            time.sleep(_FIRST_WAIT * 2**attempt * random.uniform(0.5, 1.5))
    raise OSError(
        errno.EAGAIN,
        f"the conditional create of {where} was refused or answered 409 "
        f"ConditionalRequestConflict {CONFLICT_TRIES} times with nothing there (other "
        "operations on the key keep racing it): try again later",
    )


def _owner_or_unknown(owner: Callable[[], str | None], where: str) -> str | None:
    """``owner()``; when that check fails transiently, an error saying the create's
    outcome is unknown: this call's create may have landed (its answer lost), and a
    plain "could not create" would read as "not created" while the object is there."""
    try:
        return owner()
    except Exception as exc:
        if not is_transient(exc):
            raise
        raise ConnectionError(
            f"the conditional create of {where} was sent, but the check of whose object "
            f"is there failed (last: {exc}): whether this call created the object is "
            "unknown: look at the object, or try again later"
        ) from exc
