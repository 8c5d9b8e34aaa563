"""Example pipeline: extract -> transform -> load, on LocalResult.

Run it twice: the second run is served from the targets written by the first.

    python examples/pipeline.py            # results under ~/.resultkit/results
    python examples/pipeline.py ./out      # results under ./out
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta

from rich.console import Console
from rich.table import Table

from resultkit import Flow, Parameter, task
from resultkit.results import LocalResult
from resultkit.serializers import JSONSerializer

attempts = {"load": 0}


def build_flow(result: LocalResult, run_store: str | None = None) -> Flow:
    @task(target="{flow_name}/{today}/extract-{city}.json", checkpoint=True)
    def extract(city: str) -> list[dict]:
        """Pretend to download a day of readings (slow in real life)."""
        return [{"city": city, "hour": h, "temp_c": 10 + (h % 7) * 0.5} for h in range(24)]

    @task(target="{flow_name}/{today}/transform-{city}.json", cache_for=timedelta(hours=12))
    def transform(rows: list[dict], city: str) -> dict:
        """Summarise the day; the target expires after 12 hours."""
        temps = [r["temp_c"] for r in rows]
        return {"city": city, "min": min(temps), "max": max(temps), "mean": sum(temps) / len(temps)}

    @task(max_retries=2, retry_delay=timedelta(milliseconds=200), checkpoint=False)
    def load(summary: dict) -> str:
        """Write to a flaky 'warehouse': the first attempt in each process fails."""
        attempts["load"] += 1
        if attempts["load"] == 1:
            raise ConnectionError("warehouse connection reset (first attempt always fails)")
        return f"loaded {summary['city']}: mean {summary['mean']:.2f} C"

    with Flow("weather", result=result, run_store=run_store) as flow:
        city = Parameter("city", default="lisbon")
        rows = extract(city)
        summary = transform(rows, city)
        load(summary)
    return flow


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    folder = argv[1] if len(argv) > 1 else None
    result = LocalResult(dir=folder, serializer=JSONSerializer(indent=1))
    console = Console()
    console.print(f"[bold]resultkit example[/bold]: results under {result.root_url}")
    # Given a folder, everything stays in it: the run records too (resume, `resultkit runs`).
    flow = build_flow(result, os.path.join(folder, "runs") if folder else None)
    state = flow.run(parameters={"city": "lisbon"})

    table = Table(title=f"flow 'weather': {type(state).__name__}")
    for col in ("task", "state", "runs", "value / location"):
        table.add_column(col)
    for t, s in state.result.items():
        shown = s.location or repr(s.result)
        table.add_row(t.name, type(s).__name__, str(s.run_count), shown[:80])
    console.print(table)
    cached = [t.name for t, s in state.result.items() if s.is_cached()]
    if cached:
        console.print(
            f"served from cache: {', '.join(cached)} (run again after deleting the folder to recompute)"
        )
    else:
        console.print(
            "computed everything; run the same command again to see it served from the cache"
        )
    return 0 if state.is_successful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
