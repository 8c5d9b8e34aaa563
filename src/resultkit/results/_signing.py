"""Signed results: an HMAC-SHA256 over what a record says, for the location it is at.

With a key, every record written carries ``signature`` (hex) and ``key_id``
(a fingerprint of the key, never the key). A read with keys refuses, before
any byte is deserialized, a record that is unsigned, signed by an unknown
key, or signed for other bytes, another serializer or another location
(a swapped or relocated pair). Several keys may verify (key rotation); the
first one signs. Signing does not stop a rollback: a pair that was validly
signed for this location earlier still verifies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from collections.abc import Sequence

from ..errors import ConfigurationError, ResultCorruptError
from ._record import Record

__all__ = ["SigningKeys", "SIGNING_KEY_ENV"]

#: Environment variable with the signing key (several, separated by spaces: the first signs).
SIGNING_KEY_ENV = "RESULTKIT_SIGNING_KEY"


def _as_bytes(key: str | bytes) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise ConfigurationError(
        f"a signing key must be str or bytes, got {type(key).__name__}; "
        "e.g. signing_key=os.environ['MY_RESULTS_KEY']"
    )


class SigningKeys:
    """The keys of a Result: the first signs, all verify."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if any(len(k) < 16 for k in keys):
            raise ConfigurationError(
                "a signing key must be at least 16 bytes; generate one with "
                "python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        self._keys = {hashlib.sha256(b"resultkit-key-id" + k).hexdigest()[:16]: k for k in keys}
        self._signing_id = next(iter(self._keys))

    @classmethod
    def from_argument(
        cls, signing_key: str | bytes | Sequence[str | bytes] | None
    ) -> SigningKeys | None:
        """Keys from ``signing_key=`` (one key or a list), else the environment, else None."""
        if signing_key is None:
            env = os.environ.get(SIGNING_KEY_ENV, "").split()
            return cls([k.encode("utf-8") for k in env]) if env else None
        keys = [signing_key] if isinstance(signing_key, (str, bytes)) else list(signing_key)
        if not keys:
            raise ConfigurationError("signing_key=[] names no key; pass None for no signing")
        return cls([_as_bytes(k) for k in keys])

    @staticmethod
    def _message(record: Record, key: str) -> bytes:
        return "\n".join(
            ["resultkit-signature-v1", record.digest, str(record.size), record.serializer, key]
        ).encode("utf-8")

    def _mac(self, key_id: str, record: Record, key: str) -> str:
        return hmac.new(self._keys[key_id], self._message(record, key), hashlib.sha256).hexdigest()

    def sign(self, record: Record, key: str) -> Record:
        """``record`` with a signature for the storage key ``key``."""
        mac = self._mac(self._signing_id, record, key)
        return dataclasses.replace(record, signature=mac, key_id=self._signing_id)

    def check(self, record: Record, key: str, location: str) -> None:
        """Refuse ``record`` unless one of the keys signed it for ``key``."""
        if not record.signature:
            why = "it is not signed"
        elif record.key_id not in self._keys:
            why = f"it is signed by a key this result does not have (key id {record.key_id})"
        elif not hmac.compare_digest(self._mac(record.key_id, record, key), record.signature):
            why = (
                "its signature does not match: the payload, its record or its location was "
                "changed by someone without the key (or the pair was moved from another location)"
            )
        else:
            return
        raise ResultCorruptError(
            f"the result at {location} is refused: {why}. Nothing was deserialized. "
            "Write it again with the signing key.",
            location=location,
        )

    def __repr__(self) -> str:
        return f"SigningKeys({len(self._keys)} keys)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SigningKeys) and other._keys == self._keys

    __hash__ = None  # type: ignore[assignment]
