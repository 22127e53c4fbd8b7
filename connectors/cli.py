"""The `ketenbus` command: the runtime's commands (streams.cli) plus those of the edges."""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

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


def _service(module: str) -> Callable[[Any, threading.Event], None]:
    """A connector's `run(settings, stop)`, imported when `ketenbus up` starts it."""

    def run(settings: Any, stop: threading.Event) -> None:
        importlib.import_module(f"connectors.{module}").run(settings, stop)

    return run


def _serve_alone(module: str, args: argparse.Namespace) -> int:
    """Run one connector in the foreground until SIGINT/SIGTERM."""
    from streams import logs, metrics
    from streams.settings import Settings

    settings = Settings(**({"bootstrap": args.bootstrap} if getattr(args, "bootstrap", None) else {}))
    if not settings.bootstrap:
        print(f"ketenbus {args.command}: give --bootstrap (or KETENBUS_BOOTSTRAP)", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if args.metrics_port is not None:
        metrics.serve(args.metrics_port, settings.metrics_addr)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    importlib.import_module(f"connectors.{module}").run(settings, stop)
    return 0


def cmd_inzage(args: argparse.Namespace) -> int:
    from connectors import inzage
    from streams.settings import Settings

    overrides = {"pg_dsn": args.dsn} if args.dsn else {}
    return int(inzage.run(args.persoon_ref, args.format, Settings(**overrides)))


def cmd_openapi(args: argparse.Namespace) -> int:
    from connectors.openapi import document

    print(json.dumps(document(), indent=2, ensure_ascii=False))
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    from streams.cli import UP_SERVICES

    for module, role in (("ingress", "ingress"), ("webhook", "webhooks"), ("register", "register")):
        UP_SERVICES[role] = _service(module)
    for module, name, help_ in (
        ("ingress", "ingress", "Run the HTTP ingress (POST /v1/events) against a running bus."),
        ("webhook", "webhooks", "Deliver partners' outboxes to their HTTPS endpoints (KETENBUS_WEBHOOKS)."),
        ("register", "register", "Write keten.verstrekkingen to the PostgreSQL register (KETENBUS_PG_DSN)."),
    ):
        p = add(name, lambda a, m=module: _serve_alone(m, a), help_)
        p.add_argument("--bootstrap", default=None, help="the running bus (default: KETENBUS_BOOTSTRAP)")
        p.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port")
    p = add("inzage", cmd_inzage, "Every registered disclosure about one person (AVG art. 15).")
    p.add_argument("persoon_ref", help="the pseudonymous person reference")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--dsn", default=None, help="register database (default: KETENBUS_PG_DSN)")
    add("openapi", cmd_openapi, "Print the OpenAPI 3.1 document of the HTTP ingress.")
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
