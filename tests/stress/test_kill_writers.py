"""SIGKILL a process that overwrites one key in a loop, at a different instant each time.

Promise checked (README "Guarantees", crash consistency): a writer killed at
any instant leaves the old or the new value readable, never an error and
never an older value; its temporary files are garbage only until the next
writer's sweep (local: dead process and 5 s old; object stores: the key's
next large write, here with the age limit at 0).

Counts (reduced / full): Local 40 kills of a 4 MB writer / 200 of a 32 MB
one; S3 on moto 16 / 50 kills, alternating writers of 1 MB (one PUT) and of
6 / 8 MB (past the 5 MB single-request limit: a temporary object, then a
copy). And, both ways, 3 writers in a row killed exactly between their two
renames (local), the instant a random kill rarely hits.

Each kill: the zygote forks a writer, which says ``ready`` on the report
pipe right before its loop; the test waits for that line (readiness is
never a sleep), waits a delay spread over three write durations by the
golden ratio (so the instants cover the whole write-and-publish cycle),
SIGKILLs it and reaps it, then reads the key.
"""

from __future__ import annotations

import time
from typing import Any

from resultkit.results._localsafety import sweep_dead_writers
from resultkit.results._location import TEMP_MARKER

from ._backends import list_all, make_spec
from ._zygote import Zygote, blob, build_result, describe

MB = 2**20
GOLDEN = 0.6180339887498949


def _kill_loop(
    z: Zygote,
    spec: dict[str, Any],
    kills: int,
    sizes: list[int],
    span: float,
    after_kill: Any,
) -> dict[str, Any]:
    """Spawn, kill and read ``kills`` times; what the reads found."""
    reader = build_result(spec)
    prev = (0, 0)
    out: dict[str, Any] = {
        "failed": 0,
        "went_back": 0,
        "wrong": 0,
        "published": 0,
        "mid_write": 0,
        "first_failures": [],
    }
    for n in range(kills):
        pid = z.spawn("overwrite", spec=spec, key="k.pkl", size=sizes[n % len(sizes)])
        ready = z.report(timeout=120)
        assert ready == {"kind": "ready", "pid": pid}, ready
        time.sleep(span * ((n * GOLDEN) % 1.0))
        z.kill(pid)
        if after_kill(pid):
            out["mid_write"] += 1
        try:
            value = reader.read("k.pkl").value
        except Exception as exc:  # counted: a failed read is the finding
            out["failed"] += 1
            if len(out["first_failures"]) < 3:
                out["first_failures"].append(f"kill {n}: {describe(exc)}")
            prev = (-1, -1)  # unknown from here on
            continue
        size = len(value["blob"])
        if size not in (0, *sizes) or value["blob"] != blob(value["round"], size):
            out["wrong"] += 1
        if value["pid"] == pid:
            out["published"] += 1
        elif prev != (-1, -1) and (value["pid"], value["round"]) != prev:
            out["went_back"] += 1  # neither the value before this writer nor its own
        prev = (value["pid"], value["round"])
    return out


def _span(spec: dict[str, Any], size: int) -> float:
    """Three durations of one write of ``size`` bytes: the range the kill instants cover."""
    r = build_result(spec)
    value = {"pid": 0, "round": 1, "blob": blob(1, size)}
    r.write(value, location="calibrate.pkl")  # the client is built and warm
    start = time.monotonic()
    r.write(value, location="calibrate.pkl")
    took = time.monotonic() - start
    r.delete("calibrate.pkl")
    return max(3 * took, 0.05)


def test_sigkill_local_overwriter(tmp_path, stress, figures):
    kills = stress.pick(40, 200)
    size = stress.pick(4 * MB, 32 * MB)
    spec = make_spec("local", None, tmp_path)  # type: ignore[arg-type]
    root = tmp_path / "root"
    build_result(spec).write({"pid": 0, "round": 0, "blob": b""}, location="k.pkl")
    span = _span(spec, size)

    def temps() -> list[str]:
        return [p.name for p in root.iterdir() if TEMP_MARKER in p.name]

    def left_by(pid: int) -> bool:
        return any(f"{TEMP_MARKER}{pid}-" in name for name in temps())

    with Zygote() as z:
        out = _kill_loop(z, spec, kills, [size], span, left_by)
    left = temps()
    left_mb = sum((root / n).stat().st_size for n in left) / MB
    swept = sweep_dead_writers(str(root), now=time.time() + 60, force=True)
    after = temps()
    final_ok = True
    try:
        build_result(spec).read("k.pkl")
    except Exception as exc:  # recorded below
        final_ok = False
        figures.note(f"final read: {describe(exc)}")

    b = "local"
    figures.add(b, "kills (SIGKILL)", kills, f">= {stress.pick(40, 200)}")
    figures.add(b, "payload MB", size // MB)
    figures.add(b, "kill instants spread over (ms)", round(span * 1000))
    figures.add(b, "kills mid-write (temp file of the killed pid left)", out["mid_write"])
    figures.add(b, "kills after >= 1 publish by the killed writer", out["published"])
    figures.add(b, "failed reads after a kill", out["failed"], "== 0")
    figures.add(b, "reads of an older value", out["went_back"], "== 0")
    figures.add(b, "wrong values", out["wrong"], "== 0")
    figures.add(b, "temp files before the sweep", len(left))
    figures.add(b, "temp MB before the sweep", round(left_mb, 1))
    figures.add(b, "temp files removed by the sweep", len(swept))
    figures.add(b, "temp files left after the sweep", len(after), "== 0")
    figures.add(b, "final read ok", int(final_ok), "== 1")
    for line in out["first_failures"]:
        figures.note(line)
    figures.check()
    assert out["published"] > 0, "no killed writer ever published: the kills tested nothing"


def test_sigkill_s3_overwriter(request, tmp_path, stress, figures):
    kills = stress.pick(16, 50)
    sizes = [1 * MB, stress.pick(6 * MB, 8 * MB)]
    spec = make_spec("moto", request, tmp_path)
    r = build_result(spec)
    r.write({"pid": 0, "round": 0, "blob": b""}, location="k.pkl")
    span = _span(spec, sizes[1])

    with Zygote(("s3fs",)) as z:
        out = _kill_loop(z, spec, kills, sizes, span, lambda pid: False)
    names = list_all(spec)
    temps = [n for n in names if TEMP_MARKER in n]
    bucket, prefix = spec["bucket"], spec["prefix"]
    uploads = r.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix + "/")
    open_uploads = len(uploads.get("Uploads", []))
    # The sweep on object stores: the next large write of the key removes the
    # temporary objects of writers that are gone (older than stale_temp_age,
    # 0 here: every writer but this process is dead).
    sweeper = build_result(spec)
    if hasattr(sweeper.storage, "stale_temp_age"):
        sweeper.storage.stale_temp_age = 0.0
    sweeper.write({"pid": 0, "round": 0, "blob": blob(0, sizes[1])}, location="k.pkl")
    temps_after = [n for n in list_all(spec) if TEMP_MARKER in n]

    b = "s3 (moto)"
    figures.add(b, "kills (SIGKILL)", kills, f">= {stress.pick(16, 50)}")
    figures.add(b, "payload MB (alternating)", "/".join(str(s // MB) for s in sizes))
    figures.add(b, "kill instants spread over (ms)", round(span * 1000))
    figures.add(b, "kills after >= 1 publish by the killed writer", out["published"])
    figures.add(b, "failed reads after a kill", out["failed"], "== 0")
    figures.add(b, "reads of an older value", out["went_back"], "== 0")
    figures.add(b, "wrong values", out["wrong"], "== 0")
    figures.add(b, "objects under the prefix after the kills", len(names))
    figures.add(b, "temp objects ('.rktmp-') after the kills", len(temps))
    figures.add(b, "incomplete multipart uploads (invisible)", open_uploads)
    figures.add(b, "temp objects after the next writer's sweep", len(temps_after), "== 0")
    for line in out["first_failures"]:
        figures.note(line)
    figures.check()
    assert out["published"] > 0, "no killed writer ever published: the kills tested nothing"


def test_writers_killed_between_their_two_renames_several_times_in_a_row(tmp_path, figures):
    """The instant that matters most, hit on purpose: after the record's rename, before the
    payload's. Each writer stops itself there (SIGSTOP) and is SIGKILLed; the key must
    still read as the value before the first of them, however many die in a row."""
    spec = make_spec("local", None, tmp_path)  # type: ignore[arg-type]
    r = build_result(spec)
    r.write({"pid": 0, "round": 0, "blob": b""}, location="k.pkl")
    outcomes = []
    with Zygote() as z:
        for n in range(1, 4):
            pid = z.spawn("stop_between", spec=spec, key="k.pkl", tag=n)
            between = z.report(timeout=60)
            assert between == {"kind": "between", "pid": pid}, between
            z.kill(pid)
            try:
                value = r.read("k.pkl").value
                outcomes.append("old value" if value["round"] == 0 else f"round {value['round']}")
            except Exception as exc:  # recorded: the finding
                outcomes.append(describe(exc, 160))
    b = "local"
    failed = sum(not o.startswith(("old value", "round")) for o in outcomes)
    figures.add(b, "writers killed between their renames, in a row", len(outcomes))
    figures.add(b, "failed reads after those kills", failed, "== 0")
    for n, outcome in enumerate(outcomes, 1):
        figures.note(f"after kill {n}: {outcome}")
    figures.check()
    assert outcomes == ["old value"] * 3, outcomes
