"""``resultkit adopt``: integrity records for payloads another tool wrote (Prefect 1 targets)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ResultCorruptError, ResultKitError
from ._common import OK, PROBLEMS, CliError, Output, failures, one_line, shown
from ._inventory import take_inventory
from ._open import open_target
from ._serializers import serializer_named

__all__ = ["run_adopt"]


def run_adopt(args: argparse.Namespace, out: Output) -> int:
    """``resultkit adopt URL [-r]``: records for payloads that deserialize; 1 if any is refused."""
    serializer = serializer_named(args.serializer)
    target = open_target(args.url, args.endpoint_url, args.storage_option)
    result = target.result.copy()
    result.serializer = serializer
    if target.name is not None:
        keys = [target.name]
    else:
        inventory = take_inventory(result, args.url)
        keys = [k for k in inventory.payloads if args.recursive or "/" not in k]
        if not keys:
            raise CliError(f"nothing is stored under {shown(args.url)}")
    adopted: list[str] = []
    had_record: list[str] = []
    refused: list[dict[str, Any]] = []
    for key in keys:
        url = result.storage.url(key)
        try:
            with failures(url, "check"):
                try:
                    result.stat(key)
                    had_record.append(url)
                    continue
                except ResultCorruptError as exc:
                    if "no integrity record" not in str(exc):
                        raise  # a damaged record is not a foreign payload: verify reports it
            result.adopt(key)
            adopted.append(url)
            out.line(f"adopted {shown(url)} ({shown(serializer.name)})")
        except (CliError, ResultKitError) as exc:
            reason = str(exc) if isinstance(exc, CliError) else one_line(exc)
            refused.append({"location": url, "problem": reason})
            out.errors.print(f"refused {shown(url)}: {reason}")
    if out.as_json:
        out.json({"adopted": adopted, "already_recorded": had_record, "refused": refused})
    else:
        out.line(
            f"{len(adopted)} adopted, {len(had_record)} already had a record, "
            f"{len(refused)} refused"
        )
    return PROBLEMS if refused else OK
