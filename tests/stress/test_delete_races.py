"""Reads racing ``delete()``: "not found" or the whole value, never a false "corrupt".

Promise checked (README "Guarantees", reads racing deletes): a read that
meets a key while another process writes and deletes it in a loop returns
the whole value or raises ``ResultNotFoundError``; never
``ResultCorruptError`` (no false alarm), never a wrong value.

Counts (reduced / full): 400 / 3000 reads, on local disk and S3 (moto). The
churning writer is another process (forked by the zygote); the reader is
the test process.
"""

from __future__ import annotations

import pytest

from ._backends import make_spec, preload
from ._zygote import Zygote, blob, build_result, classify, describe


@pytest.mark.parametrize("backend", ["local", "moto"])
def test_reads_racing_deletes(backend, request, tmp_path, stress, figures):
    cycles = stress.pick(400, 3000)
    spec = make_spec(backend, request, tmp_path)
    stop = tmp_path / "stop"
    reader = build_result(spec)
    expected = {"churn": list(range(64)), "blob": blob(7, 4096)}
    counts = {"ok": 0, "missing": 0, "alarm": 0, "error": 0, "wrong": 0}
    with Zygote(preload(backend)) as z:
        z.spawn("churn", spec=spec, key="k.pkl", stop=str(stop))
        ready = z.report(timeout=180)
        assert ready["kind"] == "ready", ready
        for _ in range(cycles):
            try:
                value = reader.read("k.pkl").value
            except Exception as exc:  # classified and counted
                kind = classify(exc)
                counts[kind] += 1
                if kind != "missing" and counts[kind] <= 2:
                    figures.note(f"{kind}: {describe(exc)}")
            else:
                counts["ok" if value == expected else "wrong"] += 1
        stop.touch()
        churned = z.report(timeout=120)
    assert churned["kind"] == "churned", churned
    if churned["first_error"]:
        figures.note(f"churn: {churned['first_error']}")

    b = backend
    figures.add(b, "reads racing write+delete", cycles, f">= {stress.pick(400, 3000)}")
    figures.add(b, "write+delete cycles meanwhile", churned["cycles"], "> 0")
    figures.add(b, "reads: whole value", counts["ok"])
    figures.add(b, "reads: not found", counts["missing"])
    figures.add(b, "false corruption errors", counts["alarm"], "== 0")
    figures.add(b, "wrong values", counts["wrong"], "== 0")
    figures.add(b, "other read errors", counts["error"], "== 0")
    figures.add(b, "churn errors", churned["errors"], "== 0")
    figures.check()
