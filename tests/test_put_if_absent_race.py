"""put_if_absent under a race, and when its answer is lost: exactly one winner, never a lost win.

The contract's ``test_put_if_absent_exactly_one_winner`` failed once on
moto under load with two winners: moto checks ``If-None-Match: *`` and then
stores, with nothing between, so a server preempted between the two lets a
second create pass the check (moto alone, 12 raw signed PUTs a round, two
busy loops on the machine: 3 of 600 rounds had two 200s). The test servers
now make the check and the store one step (tests/moto_launcher.py). Here a
moto whose every store waits after its check (``RESULTKIT_MOTO_CHECK_DELAY``)
opens that window wide, so a server without the fix fails every time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

import emulators
from fault_proxy import FaultProxy
from resultkit.errors import StorageError
from resultkit.results import S3Result
from resultkit.results._objcreate import CONFLICT_TRIES

CREATORS = 12
#: Seconds every store of the slow server waits after its checks: the creators'
#: requests all arrive within it (they are released together).
CHECK_DELAY = 0.3


@pytest.fixture(scope="module")
def slow_store_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emulators.Emulator]:
    server = emulators.moto(tmp_path_factory.mktemp("slow-moto"))
    server.env["RESULTKIT_MOTO_CHECK_DELAY"] = str(CHECK_DELAY)
    server.start()
    yield server
    server.stop()


def s3_result(url: str, engine: str) -> S3Result:
    r = S3Result(
        "rk-race",
        prefix=uuid.uuid4().hex,
        endpoint_url=url,
        engine=engine,
        storage_options={"key": "testing", "secret": "testing"},
    )
    if not r.fs.exists("rk-race"):
        r.fs.mkdir("rk-race")
    return r


@pytest.mark.parametrize("engine", ["obstore", "s3fs"])
def test_one_winner_when_the_server_is_slow_between_check_and_store(
    slow_store_moto: emulators.Emulator, engine: str
) -> None:
    r = s3_result(slow_store_moto.url, engine)
    start = threading.Barrier(CREATORS, timeout=30)
    won: dict[int, bool] = {}
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            start.wait()
            won[i] = r.put_if_absent(f"marker-{i}".encode(), location="locks/slow")
        except BaseException as exc:  # collected: the test asserts there were none
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(CREATORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, f"every concurrent put_if_absent must answer True or False: {errors!r}"
    assert len(won) == CREATORS, f"{CREATORS - len(won)} put_if_absent calls did not return"
    winners = sorted(i for i, ok in won.items() if ok)
    assert len(winners) == 1, (
        f"of {CREATORS} concurrent creates on a server slow between its check and its "
        f"store, exactly one must win; {len(winners)} did ({winners})"
    )
    stored = r.fs.cat(r.storage.path("locks/slow"))
    assert stored == f"marker-{winners[0]}".encode(), f"the winner's bytes must stay: {stored!r}"


def test_obstore_create_whose_answer_is_lost_is_settled_by_its_nonce(moto_server) -> None:
    """obstore sends a conditional create once a try. Its answer lost, one HEAD settles it:
    the object carries this call's nonce, so the create won; with nothing there it is sent
    again with the same nonce, and only when no try got an answer is the outcome unknown."""
    with FaultProxy(moto_server.port) as proxy:
        r = s3_result(proxy.url, "obstore")
        proxy.clear()
        proxy.reset(1, after_upstream=True, method="PUT")  # created, then the answer is lost
        assert r.put_if_absent(b"mine", location="locks/lost") is True
        puts = [x.outcome for x in proxy.log if x.method == "PUT"]
        assert puts == ["reset-after-upstream"], (
            "a conditional create must be sent once: sent again, the object the first made "
            f"refuses it and a won race reads as lost; the PUTs were {puts}"
        )
        assert r.fs.cat(r.storage.path("locks/lost")) == b"mine"
        assert r.put_if_absent(b"other", location="locks/lost") is False

        proxy.clear()
        proxy.reset(1, method="PUT")  # never reached the server: nothing there to look at
        assert r.put_if_absent(b"mine", location="locks/again") is True  # sent again, same nonce
        puts = [x.outcome for x in proxy.log if x.method == "PUT"]
        assert puts == ["reset", "forwarded"], puts

        proxy.clear()
        proxy.reset(CONFLICT_TRIES, method="PUT")  # no create ever answered: nothing there
        with pytest.raises(StorageError, match="whether it will create the object is unknown"):
            r.put_if_absent(b"mine", location="locks/never")
        assert [x.outcome for x in proxy.log if x.method == "PUT"] == ["reset"] * CONFLICT_TRIES


def test_s3fs_create_sent_again_after_its_answer_was_lost_still_wins(moto_server) -> None:
    """s3fs (aiohttp, botocore, s3fs's own retries) sends a create again when its answer
    is lost; the object the first one made refuses it. That refusal is the caller's own
    win: a nonce in the create's metadata tells it from a lost race."""
    with FaultProxy(moto_server.port) as proxy:
        r = s3_result(proxy.url, "s3fs")
        proxy.clear()
        proxy.reset(1, after_upstream=True, method="PUT")  # created, then the answer is lost
        assert r.put_if_absent(b"mine", location="locks/resent") is True, (
            "a create whose first attempt made the object won, even if its resent attempt "
            "was refused by that object"
        )
        puts = [x.outcome for x in proxy.log if x.method == "PUT"]
        assert len(puts) >= 2 and puts[0] == "reset-after-upstream"  # it was sent again
        assert r.fs.cat(r.storage.path("locks/resent")) == b"mine"
        assert r.put_if_absent(b"other", location="locks/resent") is False  # a real loss
