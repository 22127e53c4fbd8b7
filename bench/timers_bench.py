"""The deadline book under load: start 100,000 pending deadlines, then fire them all.

Pure, no broker: `streams.timers.TimerBook` over a plain dict store (a Faust table in
production), with the real `policy/termijnen.yaml`. `Huisverbod.opgelegd` events for cases
spread over a simulated year (2026), three partitions; each event starts three deadlines
(huisverbod-contactadres after 24 hours, huisverbod-verlenging's reminder after 8 days and its
expiry after 10 days). Nothing satisfies them, so every one of them escalates.

The measurement runs in a fresh subprocess, without tracemalloc, so that the memory figure is the
growth of the peak resident set (VmHWM; `ru_maxrss` would start at the parent's peak) while the
deadlines are started and the timings are not slowed down by tracing:

- start: wall time of `on_event` for every case (only that call is timed; the events are made
  one at a time and dropped, so the growth is the book's own: store entries plus heaps);
- sweep: daily virtual ticks over the year and until the last deadline (`due(partition, now)`
  then `confirm`, for each of the three partitions), the time per escalation, and that each
  partition fired in due order with nothing left over;
- ordering: 10,000 deadlines started in shuffled order in one partition, fired by a single
  `due` call far in the future: they must come out sorted by due time (`ordered: true`).

The baseline is the floor: a bare `heapq` of `(due_ms, zaak, slot)` tuples, pushed and popped
over the same ticks, without entries, ids or Escalatie datums.

Run as `python -m bench.timers_bench measure DEADLINES SEED` it is the subprocess (prints JSON).
"""

from __future__ import annotations

import datetime as dt
import gc
import heapq
import json
import platform
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NAME = "timers"
DEADLINES = 100_000
ORDERING_DEADLINES = 10_000
SEED = 20260302
PARTITIONS = 3
PER_CASE = 3  # deadlines one Huisverbod.opgelegd starts
YEAR_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY_MS = 24 * 3600 * 1000
YEAR_MS = 365 * DAY_MS
CE_TYPE = "nl.ketenbus.huisverbod.opgelegd"
REPO = Path(__file__).resolve().parent.parent


def _log(message: str) -> None:
    print(f"  [timers bench] {message}", file=sys.stderr, flush=True)


def _event(i: int, cases: int, rng: random.Random, tag: str) -> tuple[dict[str, Any], str, int]:
    """The decoded record of the i-th Huisverbod.opgelegd, its ce_id and its partition."""
    start = YEAR_START + dt.timedelta(milliseconds=(i * YEAR_MS // cases) + rng.randrange(3_600_000))
    start = start.replace(microsecond=start.microsecond // 1000 * 1000)
    zaak = f"ZAAK-2026-{i:06d}-{tag}"
    persons = [
        {"persoon_ref": f"{rng.getrandbits(256):064x}", "rol": "slachtoffer", "minderjarig": False},
        {"persoon_ref": f"{rng.getrandbits(256):064x}", "rol": "pleger", "minderjarig": False},
    ]
    if rng.random() < 0.5:
        persons.append({"persoon_ref": f"{rng.getrandbits(256):064x}", "rol": "kind", "minderjarig": True})
    record = {
        "stap": "opgelegd",
        "zaak_ref": zaak,
        "tijdstip": start,
        "persoon_refs": persons,
        "schadelijke_praktijk": False,
        "risicotaxatie_vastgelegd": rng.random() < 0.5,
        "minderjarigen_betrokken": len(persons) > 2,
        "ingangsdatum": start,
        "einddatum": start + dt.timedelta(days=10),
        "pleger_meerderjarig": True,
        "contactadres": None,
        "woonadres": f"Dorpsstraat {rng.randint(1, 250)}, 3511 AB Utrecht",
    }
    return record, str(uuid.UUID(int=rng.getrandbits(128), version=4)), i % PARTITIONS


def _events(cases: int, seed: int) -> Iterator[tuple[dict[str, Any], str, int]]:
    rng = random.Random(seed)
    tag = f"{rng.getrandbits(32):08x}"
    for i in range(cases):
        yield _event(i, cases, rng, tag)


def _status_kib(field: str) -> int | None:
    """A `kB` field of /proc/self/status (Linux): VmHWM is the peak resident set, VmRSS the current."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_kib() -> int:
    """The peak resident set of this process.

    VmHWM where there is one: `ru_maxrss` of a process started by a big parent starts at the
    parent's peak (Linux carries it over fork and exec), which hides the growth measured here.
    """
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _rss_kib() -> int:
    return _status_kib("VmRSS") or 0


def measure(deadlines: int = DEADLINES, seed: int = SEED) -> dict[str, Any]:
    """The whole measurement; meant to run in a fresh process (see the module docstring)."""
    from streams.deadlines import load_termijnen
    from streams.settings import Settings
    from streams.timers import TimerBook

    termijnen = load_termijnen(Settings().termijnen_file)
    cases = -(-deadlines // PER_CASE)

    # Warm up everything cached or imported lazily (calendar, type lookups) in a throwaway book.
    warm = TimerBook(termijnen)
    for record, event_id, partition in _events(30, seed + 1):
        warm.on_event(CE_TYPE, record, event_id, partition)
    for partition in range(PARTITIONS):
        warm.confirm(warm.due(partition, 2**62))
    del warm

    # -- start ---------------------------------------------------------------------------------
    book = TimerBook(termijnen)
    gc.collect()
    peak0, rss0 = _peak_kib(), _rss_kib()
    started = 0.0
    clock = time.perf_counter
    for record, event_id, partition in _events(cases, seed):
        t = clock()
        fired = book.on_event(CE_TYPE, record, event_id, partition)
        started += clock() - t
        if fired:
            raise AssertionError("Huisverbod.opgelegd raised a red flag")
    gc.collect()
    peak1, rss1 = _peak_kib(), _rss_kib()
    pending = book.pending_total
    if pending != cases * PER_CASE:
        raise AssertionError(f"{pending} deadlines pending, expected {cases * PER_CASE}")
    _log(f"{pending:,} deadlines started in {started:.2f} s; peak RSS +{(peak1 - peak0) / 1024:.1f} MiB")

    # -- sweep ---------------------------------------------------------------------------------
    t_year = int(YEAR_START.timestamp() * 1000)
    # The same deadlines as bare tuples, for the baseline.
    entries = [
        (p["due_ms"], zaak, slot, entry["partition"])
        for zaak, entry in book.store.items()
        for slot, p in entry["pending"].items()
    ]
    last_due = max(due_ms for due_ms, _, _, _ in entries)
    ticks = -(-(last_due - t_year) // DAY_MS)
    due_s = confirm_s = 0.0
    fired_total = 0
    largest_tick = 0
    previous = dict.fromkeys(range(PARTITIONS), -1)
    ordered = True
    for day in range(1, ticks + 1):
        now_ms = t_year + day * DAY_MS
        for partition in range(PARTITIONS):
            t = clock()
            fired = book.due(partition, now_ms)
            t2 = clock()
            book.confirm(fired)
            confirm_s += clock() - t2
            due_s += t2 - t
            fired_total += len(fired)
            largest_tick = max(largest_tick, len(fired))
            for esc in fired:
                ordered &= previous[partition] <= esc.due_ms <= now_ms
                previous[partition] = esc.due_ms
    left = book.pending_total
    if fired_total != pending or left or book.store or not ordered:
        raise AssertionError(
            f"sweep: fired {fired_total} of {pending}, {left} pending, {len(book.store)} entries left, "
            f"ordered {ordered}"
        )
    sweep_s = due_s + confirm_s
    _log(f"{fired_total:,} escalations over {ticks} daily ticks in {sweep_s:.2f} s")

    # -- ordering: 10,000 deadlines started in shuffled order, fired at once -------------------
    order_book = TimerBook(termijnen)
    order_cases = -(-ORDERING_DEADLINES // PER_CASE)
    events = list(_events(order_cases, seed + 2))
    random.Random(seed).shuffle(events)
    for record, event_id, _ in events:
        order_book.on_event(CE_TYPE, record, event_id, 0)
    t = clock()
    burst = order_book.due(0, 2**62)
    burst_s = clock() - t
    dues = [esc.due_ms for esc in burst]
    burst_ordered = len(burst) == order_cases * PER_CASE and dues == sorted(dues)
    if not burst_ordered:
        raise AssertionError(f"ordering: {len(burst)} escalations, in due order: {dues == sorted(dues)}")

    # -- baseline: a bare heap of the same (due_ms, zaak, slot) tuples -------------------------
    random.Random(seed).shuffle(entries)  # the store's order is the start order
    heaps: dict[int, list[tuple[int, str, str]]] = {p: [] for p in range(PARTITIONS)}
    t = clock()
    for due_ms, zaak, slot, partition in entries:
        heapq.heappush(heaps[partition], (due_ms, zaak, slot))
    heap_start_s = clock() - t
    t = clock()
    popped = 0
    for day in range(1, ticks + 1):
        now_ms = t_year + day * DAY_MS
        for partition in range(PARTITIONS):
            heap = heaps[partition]
            out = []
            while heap and heap[0][0] <= now_ms:
                out.append(heapq.heappop(heap))
            popped += len(out)
    heap_sweep_s = clock() - t
    if popped != pending:
        raise AssertionError(f"baseline popped {popped} of {pending}")

    return {
        "cases": cases,
        "deadlines": pending,
        "ticks": ticks,
        "start_s": started,
        "peak_rss_before_kib": peak0,
        "peak_rss_after_kib": peak1,
        "rss_before_kib": rss0,
        "rss_after_kib": rss1,
        "peak_rss_end_kib": _peak_kib(),
        "sweep_s": sweep_s,
        "sweep_due_s": due_s,
        "sweep_confirm_s": confirm_s,
        "escalations": fired_total,
        "largest_tick": largest_tick,
        "ordered": ordered and burst_ordered,
        "ordering_deadlines": len(burst),
        "ordering_due_s": burst_s,
        "heap_start_s": heap_start_s,
        "heap_sweep_s": heap_sweep_s,
    }


def run(deadlines: int = DEADLINES, seed: int = SEED) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.timers_bench", "measure", str(deadlines), str(seed)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"timers bench subprocess failed with exit code {proc.returncode}")
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    n, escalations = m["deadlines"], m["escalations"]
    peak_kib = m["peak_rss_after_kib"] - m["peak_rss_before_kib"]
    return {
        "name": NAME,
        "parameters": {
            "deadlines": n,
            "cases": m["cases"],
            "events": (
                "Huisverbod.opgelegd over 2026, 3 deadlines each (contactadres 24 h, verlenging 8 d + 10 d)"
            ),
            "partitions": PARTITIONS,
            "daily_ticks": m["ticks"],
            "store": "dict (a Faust table in production)",
            "memory": "growth of the peak RSS (VmHWM) while starting, in a fresh process, no tracemalloc",
            "seed": seed,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "figures": {
            "implementation": "streams.timers.TimerBook",
            "start_s": round(m["start_s"], 3),
            "start_us_per_deadline": round(m["start_s"] / n * 1e6, 2),
            "peak_rss_growth_mib": round(peak_kib / 1024, 1),
            "peak_rss_process_mib": round(m["peak_rss_end_kib"] / 1024, 1),
            "rss_growth_mib": round((m["rss_after_kib"] - m["rss_before_kib"]) / 1024, 1),
            "bytes_per_deadline": round(peak_kib * 1024 / n),
            "sweep_s": round(m["sweep_s"], 3),
            "sweep_due_s": round(m["sweep_due_s"], 3),
            "sweep_confirm_s": round(m["sweep_confirm_s"], 3),
            "us_per_escalation": round(m["sweep_s"] / escalations * 1e6, 2),
            "escalations": escalations,
            "largest_tick": m["largest_tick"],
            "ordered": m["ordered"],
            "ordering_deadlines": m["ordering_deadlines"],
            "ordering_single_due_s": round(m["ordering_due_s"], 3),
        },
        "baseline": {
            "implementation": "bare heapq of (due_ms, zaak, slot) tuples (the floor)",
            "start_s": round(m["heap_start_s"], 3),
            "start_us_per_deadline": round(m["heap_start_s"] / n * 1e6, 2),
            "sweep_s": round(m["heap_sweep_s"], 3),
            "us_per_escalation": round(m["heap_sweep_s"] / n * 1e6, 2),
        },
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "measure":
        print(json.dumps(measure(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print("usage: python -m bench.timers_bench measure DEADLINES SEED  (or python -m bench timers)")
        sys.exit(2)
