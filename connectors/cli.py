"""The `ketenbus` command: the runtime's commands (streams.cli) plus those of the edges."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

DEFAULT_SEED = 3  # with 40 cases this run misses every deadline kind at least once


def cmd_demo(args: argparse.Namespace) -> int:
    from connectors import demo

    return demo.run(
        cases=args.cases, seed=args.seed, speed=args.speed, bootstrap=args.bootstrap, quiet=args.quiet
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from connectors import record, replay
    from connectors.scenario import ScenarioError, load_all

    recordings = [p for p in args.paths if str(p).endswith(".jsonl")]
    scenario_paths = [p for p in args.paths if not str(p).endswith(".jsonl")]
    try:
        scenarios = load_all(scenario_paths)
    except ScenarioError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 2
    ok = True
    if scenarios:
        outcomes = replay.run_all(
            scenarios, bootstrap=args.bootstrap, shared=args.shared, start_workers=args.workers or None
        )
        ok = all(o.passed for o in outcomes)
        passed = sum(o.passed for o in outcomes)
        print(f"\n{passed}/{len(outcomes)} scenarios passed")
        if args.junit:
            replay.junit(outcomes, args.junit)
    for path in recordings:
        comparison = record.replay_recording(path)
        print(f"{path}: {comparison.render()}")
        ok = ok and comparison.identical
    return 0 if ok else 1


def cmd_record(args: argparse.Namespace) -> int:
    from connectors import record
    from streams.settings import Settings

    bootstrap = args.bootstrap or Settings().bootstrap
    if not bootstrap:
        print("ketenbus record: give --bootstrap (or KETENBUS_BOOTSTRAP) of the running bus", file=sys.stderr)
        return 2
    with open(args.out, "w", encoding="utf-8") as out:
        n = record.record(bootstrap, out, seconds=args.seconds)
    print(f"recorded {n} records to {args.out}", file=sys.stderr)
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("replay", cmd_replay, "Run scenario files (*.yaml, directories) or recordings (*.jsonl).")
    p.add_argument("paths", nargs="+", help="scenario files, directories of them, or recordings (.jsonl)")
    p.add_argument("--junit", default=None, help="write a JUnit XML report here")
    p.add_argument(
        "--bootstrap", default=None, help="run on this bus (router and timers on the virtual clock)"
    )
    p.add_argument(
        "--shared", action="store_true", help="one embedded bus for all scenarios (default: one each)"
    )
    p.add_argument("--workers", action="store_true", help="with --bootstrap: start router and timers")
    p = add("record", cmd_record, "Record inbox traffic, clock ticks and outcomes of a running bus.")
    p.add_argument("--out", required=True, help="the recording (JSON lines)")
    p.add_argument("--bootstrap", default=None, help="the running bus (default: KETENBUS_BOOTSTRAP)")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this long (0: at the current end); else SIGINT",
    )
    p = add("demo", cmd_demo, "Run the whole chain on one machine at accelerated virtual time.")
    p.add_argument("--cases", type=int, default=40, help="synthetic cases (default 40)")
    p.add_argument("--speed", type=float, default=0.0, help="virtual seconds per wall second; 0: flat out")
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"default {DEFAULT_SEED}: a run that misses every timer kind",
    )
    p.add_argument("--bootstrap", default=None, help="an existing Kafka (default: embedded broker)")
    p.add_argument("--quiet", action="store_true", help="no live progress line")


def main(argv: list[str] | None = None) -> int:
    from streams.cli import main as streams_main

    return streams_main(argv, extend=add_commands)


if __name__ == "__main__":
    sys.exit(main())
