"""Run every benchmark case for resultkit and its baselines; print medians, ratios and goals.

Usage: ``bash benchmarks/run.sh`` (sets up the interpreters), or directly
``.venv/bin/python benchmarks/run.py [--tiny] [--repeat N] [--only CASE,...]``
(``--only s3_checkpoints_seaweedfs,s3_reads_seaweedfs --s3-servers seaweedfs``
times just those rows, and their baselines). Each
implementation runs in its own interpreter (Prefect 1 and Prefect 3 in
virtual environments of their own), all in the same run, on the same
machine. Ratios are baseline time / resultkit time: above 1 means resultkit
is faster. A goal is a least ratio (issue 10's table). The machine is
shared: read medians, not single runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from lockstep import Paired, run_in_lockstep  # noqa: E402  (benchmarks/ is not a package)

#: Interpreters other than this one, and how run.sh installs them.
VENVS = {"prefect1": ".venv-prefect1", "prefect3": ".venv-prefect3"}

#: (case, baseline): (least ratio baseline/resultkit, the goal as the issue words it).
GOALS: dict[tuple[str, str], tuple[float, str]] = {
    ("large_read", "joblib"): (1.0, ">= 1.0x joblib.load's speed"),
    ("large_read", "prefect1"): (3.0, ">= 3x Prefect 1"),
    ("large_write", "prefect1"): (4.0, ">= 4x Prefect 1"),
    ("large_write", "joblib"): (1.0, "never slower than joblib.dump"),
    ("warm_flow", "prefect1"): (200.0, "<= 0.005x Prefect 1's time"),
    ("numpy_read", "joblib"): (1.0, ">= 1.0x joblib.load's speed"),
    ("numpy_write", "joblib"): (1.0, "never slower than joblib.dump"),
    ("small_write", "prefect1"): (1 / 1.5, "<= 1.5x Prefect 1's in-place write"),
    ("small_read", "prefect1"): (1 / 1.5, "<= 1.5x Prefect 1's read"),
    ("s3_checkpoints", "serial"): (10.0, ">= 10x faster than serial"),
    ("s3_checkpoints_seaweedfs", "serial"): (10.0, ">= 10x faster than serial"),
    ("s3_checkpoints_obstore", "serial"): (10.0, ">= 10x faster than serial"),
    ("s3_checkpoints_obstore_seaweedfs", "serial"): (10.0, ">= 10x faster than serial"),
    ("exists_many_4", "resultkit, 4 exists()"): (1.0, "never slower than per-key checks"),
    ("cold_flow", "prefect1"): (20.0, "per-task overhead <= 0.05x Prefect 1's"),
    ("fingerprint", "1 ms budget"): (1.0, "< 1 ms per task after the first call"),  # [caching]
}


#: Baselines that are a fixed figure (the issue's bound), not measured: never paired.
FIXED = frozenset({"1 ms budget"})


def run_impls(
    python: str, impls: list[str], repeat: int, env: dict[str, str], only: str = ""
) -> dict[str, dict[str, dict[str, float | str]]]:
    """Run ``impls`` in turn in one interpreter; their medians by implementation and case."""
    command = harness_command(python, impls, repeat, only)
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    sys.stderr.write(out.stderr)
    if out.returncode != 0 or not out.stdout.strip():
        print(f"{', '.join(impls)} failed (exit {out.returncode})", file=sys.stderr)
        return {}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def harness_command(
    python: str, impls: list[str], repeat: int, only: str = "", lockstep: bool = False
) -> list[str]:
    """The ``harness.py`` command line running ``impls`` (``only``: comma-separated cases)."""
    command = [python, str(HERE / "harness.py"), "--repeat", str(repeat)]
    if only:
        command += ["--only", only]
    for impl in impls:
        command += ["--impl", impl]
    return command + (["--lockstep"] if lockstep else [])


def pair_goals(
    impls: dict[str, str], cases: list[str], repeat: int, env: dict[str, str]
) -> dict[tuple[str, str], Paired]:
    """Each goal row's two sides again, run by run in turns (lockstep.py), by (case, baseline)."""
    by_baseline: dict[str, list[str]] = {}
    for case, baseline in GOALS:
        if baseline in FIXED:
            continue  # a fixed figure, not a run: nothing to pair
        if case in cases and baseline in impls and "resultkit" in impls:
            by_baseline.setdefault(baseline, []).append(case)
    paired: dict[tuple[str, str], Paired] = {}
    for baseline, goal_cases in by_baseline.items():
        goal_cases.sort(key=cases.index)  # the harness runs them in table order
        only = ",".join(goal_cases)
        print(f"paired runs: resultkit and {baseline} ({', '.join(goal_cases)})", flush=True)
        found, _, _ = run_in_lockstep(
            harness_command(impls["resultkit"], ["resultkit"], repeat, only, lockstep=True),
            harness_command(impls[baseline], [baseline], repeat, only, lockstep=True),
            env,
        )
        paired.update({(case, baseline): pairs for case, pairs in found.items()})
    return paired


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for impl, folder in VENVS.items():
        parser.add_argument(f"--{impl}-python", default=str(HERE / folder / "bin" / "python"))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="small sizes, one repeat (smoke)")
    parser.add_argument("--s3-servers", default=None, help="default: moto,seaweedfs (tiny: moto)")
    parser.add_argument("--json", help="also write every median to this file")
    parser.add_argument("--moto-port", type=int, help="use the moto server listening there")
    parser.add_argument(
        "--only",
        default="",
        metavar="CASE[,CASE]",
        help="run only these cases (names as in the table, before the colon)",
    )
    args = parser.parse_args()
    if args.tiny:
        os.environ["BENCH_TINY"] = "1"
        os.environ.setdefault("BENCH_LARGE_MB", "2")  # local_cases.py reads these
        os.environ.setdefault("BENCH_MANY_FILES", "500")
        args.repeat = 1
    from harness import all_cases  # after BENCH_TINY: sizes are read at import
    from latency_proxy import latent_s3

    servers = (args.s3_servers or ("moto" if args.tiny else "moto,seaweedfs")).split(",")
    with contextlib.ExitStack() as stack:
        s3 = {}
        for server in filter(None, servers):
            running = args.moto_port if server == "moto" else None
            started = stack.enter_context(latent_s3(server=server, running_port=running))
            s3[server] = {"url": started.url, "options": started.storage_options}
        os.environ["BENCH_S3"] = json.dumps(s3)
        env = {  # after latent_s3, which sets the emulators' dummy credentials
            **os.environ,
            "PREFECT__FLOWS__CHECKPOINTING": "true",  # Prefect 1 writes targets only then
            "PREFECT__LOGGING__LEVEL": "CRITICAL",
        }
        cases = all_cases()
        if args.only:
            wanted = [c for c in args.only.split(",") if c]
            unknown = [c for c in wanted if c not in cases]
            if unknown:
                parser.error(
                    f"--only: no case {', '.join(unknown)} (with --s3-servers "
                    f"{','.join(servers)}); the cases: {', '.join(cases)}"
                )
            cases = {c: cases[c] for c in wanted}
        impls: dict[str, str] = {}
        skipped: list[str] = []
        for _, case_impls in cases.values():
            for impl in case_impls:
                python = getattr(args, f"{impl}_python", None) or sys.executable
                if impl in impls or impl in skipped:
                    continue
                if not Path(python).exists():
                    skipped.append(impl)
                    print(
                        f"skipped: {impl} (no interpreter at {python}; bash benchmarks/run.sh "
                        "installs it)",
                        flush=True,
                    )
                    continue
                impls[impl] = python
        # Each implementation in an interpreter of its own; the tiny mode groups
        # those of one interpreter to start fewer (its figures are not compared).
        groups: list[tuple[str, list[str]]] = []
        for impl, python in impls.items():
            if args.tiny and groups and groups[-1][0] == python:
                groups[-1][1].append(impl)
            else:
                groups.append((python, [impl]))
        results: dict[str, dict[str, dict[str, float | str]]] = {}
        for python, group in groups:
            results.update(run_impls(python, group, args.repeat, env, args.only))
        paired = pair_goals(impls, list(cases), args.repeat, env)

    table = Table(
        title=f"resultkit vs baselines (median of {args.repeat}; ratio = baseline / resultkit; "
        "goal = least ratio; * = median of paired runs' ratios)"
    )
    for column in ("case", "resultkit", "baseline", "baseline median", "ratio", "goal", "met"):
        table.add_column(column, justify="right" if column in ("ratio",) else "left")
    met_count = goal_count = 0
    for case, (desc, case_impls) in cases.items():
        ours_row = results.get("resultkit", {}).get(case, {})
        ours = ours_row.get("median")
        ours_text = fmt(ours) if isinstance(ours, float) else f"error: {ours_row.get('error')}"
        first = True
        for impl in case_impls:
            if impl == "resultkit":
                continue
            theirs_row = results.get(impl, {}).get(case, {})
            theirs = theirs_row.get("median")
            if impl in skipped:
                theirs_text, ratio_text = "skipped (no venv)", "n/a"
            elif not isinstance(theirs, float):
                theirs_text, ratio_text = f"error: {theirs_row.get('error', 'no figure')}", "n/a"
            else:
                theirs_text = fmt(theirs)
                ratio_text = f"{theirs / ours:.2f}x" if isinstance(ours, float) else "n/a"
            pairs = paired.get((case, impl))
            ratio = pairs.ratio if pairs is not None else None
            if pairs is not None and ratio is not None:
                # The goal is judged on runs in turns, not on medians minutes apart.
                theirs_text += (
                    f" (paired: {fmt(statistics.median(pairs.theirs))} vs "
                    f"{fmt(statistics.median(pairs.ours))})"
                )
                ratio_text = f"{ratio:.2f}x*"
            elif "x" in ratio_text:
                ratio = float(ratio_text[:-1])
            least, goal_text = GOALS.get((case, impl), (None, ""))
            met = ""
            if least is not None and ratio is not None:
                goal_count += 1
                ok = ratio >= least
                met_count += ok
                met = "yes" if ok else "NO"
            table.add_row(
                f"{case}: {desc}" if first else "",
                ours_text if first else "",
                impl,
                theirs_text,
                ratio_text,
                goal_text,
                met,
            )
            first = False
    Console(width=160).print(table)
    print(f"goals met: {met_count} of {goal_count} measured")
    if paired:
        print(
            "*: both sides ran at once in two processes, one timed run at a time in turns "
            "(A B, B A, ...); the ratio is the median over those pairs (benchmarks/lockstep.py)"
        )
    if args.json:
        cases_out = {case: list(case_impls) for case, (_, case_impls) in cases.items()}
        pairs_out = {
            f"{case} / {impl}": {"resultkit": p.ours, impl: p.theirs, "ratio": p.ratio}
            for (case, impl), p in paired.items()
        }
        report = {"cases": cases_out, "skipped": skipped, "results": results, "paired": pairs_out}
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
