"""The ``resultkit`` command: see what is stored, check it, read it, clean it, adopt it, run flows.

    resultkit ls URL [-r]          results under a folder: size, age, serializer, expiry, record
    resultkit inspect URL          a result's integrity record, verified (--value: a preview)
    resultkit cat URL              a result's value, read with the serializer its record names
    resultkit verify URL [-r]      check every digest; exit 1 on any problem
    resultkit rm URL...            delete results (payload and record)
    resultkit gc URL [...]         remove leftovers, expired entries, old or orphaned results
    resultkit adopt URL [-r]       give payloads another tool wrote their integrity record
    resultkit run FILE.py          run a flow with a live table of its tasks
    resultkit runs [show RUN_ID]   recorded flow runs; one run, its graph (--graph out.svg)
    resultkit resume RUN_ID        continue a recorded run where it stopped
    resultkit version

Exit codes: 0 ok, 1 problems found (damage, failed tasks), 2 usage or access error.
This module parses arguments and dispatches; each command lives in ``resultkit._cli``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from . import __version__
from ._cli import runs as runs_command
from ._cli import why as why_command
from ._cli._common import Output, guarded

__all__ = ["main"]

_URLS = (
    "URL: a path, file://, memory://, s3://bucket/prefix, gs://bucket/prefix, az://container/prefix "
    "or any fsspec URL"
)
_EXIT = "exit codes: 0 ok, 1 problems found, 2 usage or access error (one line on stderr)"


def _command(
    sub: Any, name: str, summary: str, examples: str, common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        parents=[common],
        help=summary,
        description=summary,
        epilog=f"examples:\n{examples}\n\n{_URLS}\n{_EXIT}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint-url", metavar="URL", help="the S3 or GCS server (MinIO, a test emulator)"
    )
    common.add_argument(
        "--storage-option",
        metavar="K=V",
        action="append",
        default=[],
        help="an option of the storage client (repeatable): anon=true, profile=dev, "
        "connection_string=...; true/false, numbers and JSON become values",
    )
    common.add_argument("--json", action="store_true", help="print one JSON document")
    parser = argparse.ArgumentParser(
        prog="resultkit",
        description="See, check, read, clean and adopt stored results on any storage; run flows.",
        epilog=f"run 'resultkit COMMAND --help' for a command's options and examples.\n{_URLS}\n{_EXIT}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = _command(sub, "ls", "list stored results: location, size, age, serializer, expiry, record",
                  "  resultkit ls ~/.resultkit/results\n  resultkit ls -r s3://my-bucket/runs --json\n"
                  "  resultkit ls -r s3://bucket/runs --endpoint-url http://localhost:9000", common)  # fmt: skip
    ls.add_argument("url", metavar="URL")
    ls.add_argument("-r", "--recursive", action="store_true", help="every result at any depth")

    inspect = _command(sub, "inspect", "show a stored result's integrity record and verify its bytes",
                       "  resultkit inspect ~/.resultkit/results/weather/extract.pkl\n"
                       "  resultkit inspect s3://bucket/runs/model.pkl --value", common)  # fmt: skip
    inspect.add_argument("url", metavar="URL")
    inspect.add_argument(
        "--value", action="store_true",
        help="also read the value and show a preview (deserializes: only for storage you trust)",
    )  # fmt: skip

    cat = _command(sub, "cat", "print a stored value, read with the serializer its record names "
                   "(deserializes: only for storage you trust)",
                   "  resultkit cat ~/.resultkit/results/weather/extract.pkl\n"
                   "  resultkit cat s3://bucket/runs/summary.json --json | jq .", common)  # fmt: skip
    cat.add_argument("url", metavar="URL")

    verify = _command(sub, "verify", "check every result's size and digest against its record",
                      "  resultkit verify -r ~/.resultkit/results\n"
                      "  resultkit verify -r gs://bucket/runs --json", common)  # fmt: skip
    verify.add_argument("url", metavar="URL")
    verify.add_argument("-r", "--recursive", action="store_true", help="results at any depth")

    rm = _command(sub, "rm", "delete stored results (each payload with its record)",
                  "  resultkit rm ~/.resultkit/results/weather/extract.pkl\n"
                  "  resultkit rm -r s3://bucket/runs/2026-01-01/", common)  # fmt: skip
    rm.add_argument("urls", metavar="URL", nargs="+")
    rm.add_argument(
        "-r", "--recursive", action="store_true", help="delete folders, results at any depth"
    )

    gc = _command(sub, "gc", "remove what is no longer needed; always: temp files of killed writers "
                  "and stale locks; never a result whose lock a live run holds",
                  "  resultkit gc ~/.resultkit/cache --expired --dry-run\n"
                  "  resultkit gc ~/.resultkit/results --older-than 30d --orphans\n"
                  "  resultkit gc s3://bucket/cache --max-size 10GB", common)  # fmt: skip
    gc.add_argument("url", metavar="URL")
    gc.add_argument("--expired", action="store_true", help="expired output-cache entries")
    gc.add_argument(
        "--older-than", metavar="AGE", help="results written before AGE ago (30d, 12h, 90m)"
    )
    gc.add_argument("--max-size", metavar="SIZE",
                    help="remove least recently used results until the rest fits (500MB, 10GB, 2GiB)")  # fmt: skip
    gc.add_argument("--orphans", action="store_true",
                    help="payloads without records and records without payloads (an hour old)")  # fmt: skip
    gc.add_argument("--dry-run", action="store_true", help="change nothing; say what would go")

    adopt = _command(sub, "adopt", "write integrity records for payloads another tool wrote "
                     "(Prefect 1 targets), after each deserializes (a pickle runs code it "
                     "names: adopt only files you trust)",
                     "  resultkit adopt ~/.prefect/results/extract.txt\n"
                     "  resultkit adopt -r s3://bucket/prefect-results --serializer pickle", common)  # fmt: skip
    adopt.add_argument("url", metavar="URL")
    adopt.add_argument(
        "-r", "--recursive", action="store_true", help="every payload without a record"
    )
    adopt.add_argument("--serializer", default="pickle",
                       help="how the payloads were written (default: pickle, i.e. cloudpickle)")  # fmt: skip

    run = _command(sub, "run", "run a flow defined in a Python file, with a live table of its tasks",
                   "  resultkit run flows/etl.py\n"
                   "  resultkit run flows/etl.py --flow nightly --param day=2026-11-23 --param n=3", common)  # fmt: skip
    run.add_argument("file", metavar="FILE.py")
    run.add_argument("--flow", metavar="NAME", help="which flow, when the file defines several")
    run.add_argument("--param", metavar="K=V", action="append", default=[],
                     help="a parameter (repeatable); V is read as JSON when it parses, else text")  # fmt: skip

    why_command.add_parser(sub, common, _command)
    runs_command.add_parser(sub, common, _command)
    sub.add_parser("version", help="print the version")
    return parser


def _commands() -> dict[str, Callable[[argparse.Namespace, Output], int]]:
    from ._cli import adopt, cleanup, listing, run, verify

    return {
        "ls": listing.run_ls,
        "inspect": listing.run_inspect,
        "cat": listing.run_cat,
        "verify": verify.run_verify,
        "rm": cleanup.run_rm,
        "gc": cleanup.run_gc,
        "adopt": adopt.run_adopt,
        "run": run.run_flow,
        "why": why_command.run_why,
        "runs": runs_command.run_runs,
        "resume": runs_command.run_resume,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    out = Output(getattr(args, "json", False))
    if args.command == "version":
        out.console.print(__version__)
        return 0
    if args.command in ("run", "resume"):  # a flow's run keeps its logs
        return guarded(_commands()[args.command], args, out)
    # Storage clients log their retries (with tracebacks); the command reports
    # failures itself, in one line. Restored after: main() may run in-process.
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        return guarded(_commands()[args.command], args, out)
    finally:
        logging.disable(before)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
