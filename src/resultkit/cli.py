"""The ``resultkit`` command.

resultkit inspect URL      show a stored result's integrity record and verify it
resultkit version
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console

from . import __version__
from .errors import ResultKitError
from .results import from_url

__all__ = ["main"]


def _inspect(url: str, console: Console) -> int:
    folder, _, name = url.rstrip("/").rpartition("/")
    try:
        result = from_url(folder or ".")
        record = result.stat(name)
        if record is None:
            hint = " (it is a folder; name a stored result in it)" if os.path.isdir(url) else ""
            console.print(f"[red]nothing is stored at {url}{hint}[/red]")
            return 1
        result.read_bytes(name)  # verifies size and digest; deserializes nothing
    except ResultKitError as exc:
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}")
        return 1
    console.print(f"[green]ok[/green] {url}")
    console.print(f"  serializer  {record.serializer}")
    console.print(f"  size        {record.size} bytes")
    console.print(f"  digest      {record.digest}")
    console.print(f"  written at  {record.written_at.isoformat()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="resultkit",
        description="Inspect results stored by resultkit (any path or fsspec URL).",
        epilog="example: resultkit inspect ~/.resultkit/results/weather/extract.pkl",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    inspect_cmd = sub.add_parser("inspect", help="show and verify a stored result")
    inspect_cmd.add_argument("url", help="the result's URL or local path")
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    console = Console(soft_wrap=True)  # long digests and URLs stay on one line
    if args.command == "version":
        console.print(__version__)
        return 0
    return _inspect(args.url, console)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
