"""Eight writer processes released together on one key, with a reader racing them.

Promise checked (README "Guarantees", concurrent writers): when several
processes write one location at the same instant, the location ends holding
one writer's whole value (last writer wins), and a reader racing them gets
a whole value of that round or "not found", never a false
``ResultCorruptError`` ("does not match", "no integrity record", "kept
changing"), never a wrong value.

Counts (reduced / full): 8 writers x 12 / 100 rounds, on local disk, S3
(moto and SeaweedFS), GCS (fake-gcs-server) and Azure Blob (Azurite).

Each round: the 8 writers and the reader are blocked on one pipe; the test
writes 9 bytes to it, which releases them at the same instant. Each writer
writes its value (its id in every byte of the blob; 2 KB to 6 MB by round)
to ``k{round}.pkl``; the reader reads that key in a loop until the test,
having heard every writer finish, tells it to stop. The test then reads the
key: a read that fails or a value that is not one writer's whole value of
that round is a corrupt key. At the end every key is read again.
"""

from __future__ import annotations

import pytest

from ._backends import make_spec, preload
from ._zygote import Zygote, build_result, check_round_value, describe

WRITERS = 8
# Payload size by round: small single requests, larger ones, and one past the
# 5 MB single-request limit of the object stores (a multipart/block upload).
SIZES = [2_000, 300_000, 2_000, 1_500_000, 2_000, 300_000, 2_000, 6_000_000]


@pytest.mark.parametrize("backend", ["local", "moto", "seaweedfs", "fake-gcs", "azurite"])
def test_eight_simultaneous_writers(backend, request, tmp_path, stress, figures):
    rounds = stress.pick(12, 100)
    spec = make_spec(backend, request, tmp_path)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    checker = build_result(spec)
    writes_ok = writes_failed = corrupt = 0
    totals = {"reads": 0, "ok": 0, "missing": 0, "alarm": 0, "error": 0, "wrong": 0}
    false_alarms = alarms_on_damaged = 0
    damaged: set[int] = set()

    def verify(rnd: int) -> str | None:
        try:
            value = checker.read(f"k{rnd}.pkl").value
        except Exception as exc:  # a damaged key: counted
            return describe(exc)
        return check_round_value(value, rnd, SIZES, WRITERS)

    with Zygote(preload(backend)) as z:
        for wid in range(WRITERS):
            z.spawn("writer", spec=spec, wid=wid, sizes=SIZES)
        z.spawn("reader", spec=spec, sizes=SIZES, writers=WRITERS, ctl=str(ctl))
        ups = z.reports(WRITERS + 1, timeout=180)
        assert all(u["kind"] == "up" for u in ups), ups
        for rnd in range(rounds):
            z.release(WRITERS + 1, rnd)  # the barrier: all nine go at once
            for done in z.reports(WRITERS, timeout=300):
                assert done["kind"] == "done" and done["round"] == rnd, done
                if done["ok"]:
                    writes_ok += 1
                else:
                    writes_failed += 1
                    if writes_failed <= 3:
                        figures.note(f"round {rnd} writer {done['id']}: {done['error']}")
            (ctl / f"stop-{rnd}").touch()
            reads = z.report(timeout=300)
            assert reads["kind"] == "reads" and reads["round"] == rnd, reads
            for k in totals:
                totals[k] += reads[k]
            problem = verify(rnd)
            if problem is not None:
                corrupt += 1
                damaged.add(rnd)
                alarms_on_damaged += reads["alarm"]
                if corrupt <= 3:
                    figures.note(f"round {rnd} key damaged: {problem}")
            else:
                false_alarms += reads["alarm"]
                if reads["alarm"] and false_alarms == reads["alarm"]:
                    figures.note(f"round {rnd} false alarm: {reads['messages']}")
            if reads["wrong"] or reads["error"]:
                figures.note(f"round {rnd} reader: {reads['messages']}")
        z.release(WRITERS + 1, rounds, b"q")
    damaged_at_end = sum(verify(rnd) is not None for rnd in range(rounds))

    b = backend
    figures.add(b, "writers x rounds", f"{WRITERS} x {rounds}")
    figures.add(b, "writes ok", writes_ok)
    figures.add(b, "writes failed", writes_failed, "== 0")
    figures.add(b, "corrupt keys after a round", corrupt, "== 0")
    figures.add(b, "corrupt keys at the end", damaged_at_end, "== 0")
    figures.add(b, "racing reads", totals["reads"])
    figures.add(b, "racing reads: a whole value", totals["ok"])
    figures.add(b, "racing reads: not found yet", totals["missing"])
    figures.add(b, "false alarms (corrupt said of a sound key)", false_alarms, "== 0")
    figures.add(b, "alarms on damaged keys", alarms_on_damaged)
    figures.add(b, "racing reads: wrong value", totals["wrong"], "== 0")
    figures.add(b, "racing reads: other errors", totals["error"], "== 0")
    figures.check()
