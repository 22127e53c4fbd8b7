"""`python -m bench [NAME ...]`: run the benchmarks (all, or those named), print a table, and
write their results to `bench/results.json`, keeping the results of benchmarks not run.

Each benchmark is a callable returning `{"name", "parameters", "figures", "baseline"}`:
`figures` are ours, `baseline` the same measurements of what we compare against. Numeric
figures with a numeric baseline of the same key get a ratio column.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import alarm_bench, codec_bench, router_bench, timers_bench, year_bench

Benchmark = Callable[[], dict[str, Any]]

BENCHMARKS: list[tuple[str, Benchmark]] = [
    (codec_bench.NAME, codec_bench.run),
    (router_bench.NAME, router_bench.run),
    (alarm_bench.NAME, alarm_bench.run),
    (timers_bench.NAME, timers_bench.run),
    (year_bench.NAME, year_bench.run),
]

RESULTS = Path(__file__).resolve().parent / "results.json"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def table(results: list[dict[str, Any]]) -> str:
    rows = [("benchmark", "figure", "ours", "baseline", "ratio")]
    for result in results:
        baseline = result.get("baseline") or {}
        for key, value in result["figures"].items():
            base = baseline.get(key)
            numeric = isinstance(value, int | float) and isinstance(base, int | float) and base
            ratio = f"{value / base:.1f}x" if numeric else ""
            rows.append((result["name"], key, _fmt(value), _fmt(base), ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 2 or n == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    wanted = set(argv)
    unknown = wanted - {name for name, _ in BENCHMARKS}
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    results = []
    for name, bench in BENCHMARKS:
        if wanted and name not in wanted:
            continue
        start = time.perf_counter()
        result = {**bench(), "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        print(f"{name}: {time.perf_counter() - start:.1f} s, parameters {json.dumps(result['parameters'])}")
        results.append(result)
    print()
    print(table(results))
    RESULTS.write_text(json.dumps(merged(results), indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")
    return 0


def merged(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`results` in place of the same benchmarks in the results file, the others kept: running
    one benchmark again does not throw the rest away (each result says when it was measured)."""
    try:
        earlier = {r["name"]: r for r in json.loads(RESULTS.read_text(encoding="utf-8"))}
    except (OSError, ValueError, KeyError, TypeError):
        earlier = {}
    earlier.update({r["name"]: r for r in results})
    order = {name: n for n, (name, _) in enumerate(BENCHMARKS)}
    return sorted(earlier.values(), key=lambda r: order.get(r["name"], len(order)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
