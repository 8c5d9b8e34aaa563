"""What a newcomer found in round 6, fixed: put_if_absent that claims nothing when it fails,
a marker never seen half written, exists_many refused on the client's own loop in every case."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from fsspec.asyn import sync

from resultkit.errors import ConfigurationError
from resultkit.results import LocalResult, MemoryResult, S3Result


def _s3(port: int) -> S3Result:
    r = S3Result(
        "rk-newcomer6",
        prefix=uuid.uuid4().hex,
        endpoint_url=f"http://127.0.0.1:{port}",
        storage_options={"key": "testing", "secret": "testing"},
    )
    if not r.fs.exists("rk-newcomer6"):
        r.fs.mkdir("rk-newcomer6")
    return r


@pytest.mark.parametrize("kind", ["local", "memory", "s3"])
def test_put_if_absent_of_a_str_is_refused_and_claims_nothing(
    kind: str, tmp_path: Path, request: Any
) -> None:
    r: Any
    if kind == "local":
        r = LocalResult(dir=str(tmp_path))
    elif kind == "memory":
        r = MemoryResult()
    else:
        r = _s3(request.getfixturevalue("moto_server").port)
    with pytest.raises(ConfigurationError, match=r"raw bytes, not 'str' data: pass bytes"):
        r.put_if_absent("owner", location="locks/a.bin")  # type: ignore[arg-type]
    assert not r.exists("locks/a.bin"), "a refused create must not claim the key"
    assert r.put_if_absent(b"owner", location="locks/a.bin") is True
    assert r.put_if_absent(b"other", location="locks/a.bin") is False


def test_local_put_if_absent_that_fails_to_write_claims_nothing(tmp_path: Path) -> None:
    """A create whose write fails (here: past the process's file size limit, as a full disk
    would) leaves no file at the key, so a later create can still win."""
    script = textwrap.dedent(
        f"""
        import os, resource, signal
        from resultkit.errors import StorageError
        from resultkit.results import LocalResult
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        r = LocalResult(dir={str(tmp_path)!r})
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
        try:
            r.put_if_absent(b"x" * 100_000, location="locks/big.bin")
        except StorageError as exc:
            print("failed:", type(exc).__name__)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        print("exists after:", r.exists("locks/big.bin"))
        print("left:", sorted(os.listdir({str(tmp_path / "locks")!r})))
        print("again:", r.put_if_absent(b"small", location="locks/big.bin"))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert out == ["failed: StorageError", "exists after: False", "left: []", "again: True"], out


def test_local_marker_is_never_seen_half_written(tmp_path: Path) -> None:
    r = LocalResult(dir=str(tmp_path))
    payload = b"m" * (48 << 20)
    path = tmp_path / "locks" / "big.bin"
    seen: set[int] = set()
    errors: list[BaseException] = []
    done = threading.Event()

    def create() -> None:
        try:
            assert r.put_if_absent(payload, location="locks/big.bin") is True
        except BaseException as exc:  # collected: the test asserts there were none
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=create)
    writer.start()
    while not done.is_set():  # looks at the name for as long as the create runs
        with contextlib.suppress(FileNotFoundError):
            seen.add(os.stat(path).st_size)
    writer.join()
    assert not errors, errors
    assert seen <= {len(payload)}, f"a reader saw the marker half written: sizes {sorted(seen)}"
    assert path.read_bytes() == payload


@pytest.mark.parametrize("keys", [1, 2, 16], ids=["one key", "heads", "listing"])
def test_exists_many_on_the_clients_own_loop_is_refused_even_on_a_fresh_result(
    moto_server: Any, keys: int
) -> None:
    _s3(moto_server.port)  # the bucket
    fresh = S3Result(
        "rk-newcomer6",
        prefix=uuid.uuid4().hex,
        endpoint_url=moto_server.url,
        storage_options={"key": "testing", "secret": "testing"},
    )

    async def on_the_loop() -> Any:
        return fresh.exists_many([f"k/{i}.pkl" for i in range(keys)])

    with pytest.raises(ConfigurationError, match="exists_many.*own event loop"):
        sync(fresh.fs.loop, on_the_loop)
    assert fresh.exists_many([f"k/{i}.pkl" for i in range(keys)]) == [False] * keys
