"""The `ketenbus` command: broker, up, schemas, asyncapi, policy, demo."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.settings import Settings

if TYPE_CHECKING:
    import faust


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "bootstrap", None):
        overrides["bootstrap"] = args.bootstrap
    if getattr(args, "policy", None):
        overrides["policy_file"] = args.policy
    return Settings(**overrides)


def cmd_broker(args: argparse.Namespace) -> int:
    from streams.broker import EmbeddedBroker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedBroker(port=args.port) as broker:
        print(f"embedded broker (Tansu, memory only) at {broker.bootstrap}; Ctrl-C stops it", flush=True)
        while not stop.is_set() and broker.running:
            stop.wait(0.5)
        if not broker.running:
            print("broker process ended unexpectedly", file=sys.stderr)
            return 1
    return 0


def _router(settings: Settings, stop: threading.Event) -> None:
    from streams import router_worker

    router_worker.run(settings, stop)


#: The roles of `ketenbus up --roles` that run in a thread: name -> run(settings, stop). The
#: connectors add theirs. The settings a service gets name the bootstrap in use.
UP_SERVICES: dict[str, Callable[[Settings, threading.Event], None]] = {"router": _router}
ROLES = ("router", "timers")  # the bus's own workers; the timer worker runs in the main thread


def cmd_up(args: argparse.Namespace) -> int:
    from streams import lag, logs, metrics, topics
    from streams.broker import bootstrap_or_embedded

    settings = _settings(args)
    roles = [r for r in args.roles.split(",") if r]
    if settings.ingress_port is not None and "ingress" not in roles:
        roles.append("ingress")  # KETENBUS_INGRESS_PORT makes the ingress part of the bus
    unknown = [r for r in roles if r not in ROLES and r not in UP_SERVICES]
    if unknown or not roles:
        known = ", ".join(dict.fromkeys((*ROLES, *UP_SERVICES)))
        print(f"unknown roles {unknown}; known: {known}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    with bootstrap_or_embedded(settings.bootstrap) as bootstrap:
        client = lag.client_kwargs(settings)
        created = topics.provision(bootstrap, settings.partitions, settings.replication, **client)
        port = metrics.serve(
            args.metrics_port if args.metrics_port is not None else settings.metrics_port,
            settings.metrics_addr,
        )
        print(f"ketenbus up: bootstrap={bootstrap} metrics=http://127.0.0.1:{port}/metrics", flush=True)
        print(f"topics provisioned: {len(created)} new, {len(topics.TOPICS)} defined", flush=True)
        stop = threading.Event()
        services = _start_services(
            [r for r in roles if r != "timers"], settings.model_copy(update={"bootstrap": bootstrap}), stop
        )
        reporter = lag.start_lag_reporter(
            bootstrap, lag.consumer_groups(settings.app_id, [r for r in roles if r in ROLES]), **client
        )
        try:
            if "timers" in roles:
                from streams.app import create_app

                return _run_worker(create_app(settings, bootstrap))
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            stop.wait()
            return 0
        finally:
            stop.set()
            for t in services:
                t.join(30)
            reporter.stop()


def _start_services(names: list[str], settings: Settings, stop: threading.Event) -> list[threading.Thread]:
    """Run each service in a thread; one that fails stops the whole process (an orchestrator
    restarts it) rather than leaving a bus that silently lacks, say, its ingress."""
    import logging
    import os

    def guarded(name: str) -> None:
        try:
            UP_SERVICES[name](settings, stop)
        except Exception:
            logging.getLogger("streams.cli").exception("service failed", extra={"service": name})
            stop.set()
            os.kill(os.getpid(), signal.SIGTERM)

    threads = [threading.Thread(target=guarded, args=(n,), name=f"ketenbus-{n}", daemon=True) for n in names]
    for t in threads:
        t.start()
    return threads


def _run_worker(app: faust.App) -> int:
    import faust

    worker = faust.Worker(app, loglevel="warn", quiet=True, redirect_stdouts=False, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def cmd_schemas_check(args: argparse.Namespace) -> int:
    from schemas import compat

    problems = compat.check(Path(args.dir), Path(args.released))
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    if problems:
        print(f"schemas check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    from schemas.registry import load_dir

    count = len(load_dir(Path(args.dir)))
    print(f"schemas check: {count} schemas classified, BACKWARD compatible with released")
    return 0


def cmd_schemas_release(args: argparse.Namespace) -> int:
    from schemas import compat

    problems = [
        p for p in compat.check(Path(args.dir), Path(args.released)) if "no released version" not in p
    ]
    if problems:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        return 1
    for path in compat.release(Path(args.dir), Path(args.released)):
        print(f"released {path}")
    return 0


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from importlib.metadata import version

    from streams.asyncapi import document

    doc = document(version("ketenbus"))
    if args.format == "yaml":
        import yaml

        print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    else:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0


def cmd_deploy_render(args: argparse.Namespace) -> int:
    from streams import deploy

    for path in deploy.render(Path(args.out)):
        print(f"rendered {path}")
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from streams import policy

    path = Path(args.file) if args.file else Settings().policy_file
    try:
        loaded = policy.load(path)
    except policy.PolicyError as exc:
        for p in exc.problems:
            print(f"FAIL {p}", file=sys.stderr)
        print(f"policy check: {len(exc.problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    print(f"policy check: {path} version {loaded.version}: {len(loaded.rules)} rules, all valid")
    return 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from schemas.registry import PARTNERS, resolve_type
    from streams import policy

    try:
        resolve_type(args.type)
    except KeyError as exc:
        print(f"policy explain: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.recipient not in PARTNERS:
        print(
            f"policy explain: unknown recipient {args.recipient!r}; one of {', '.join(PARTNERS)}",
            file=sys.stderr,
        )
        return 2
    loaded = policy.load(Path(args.policy) if args.policy else Settings().policy_file)
    result = loaded.explain(args.type, args.recipient)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"{result['type']} -> {result['recipient']} (policy {result['policy_version']})")
    if not result["allowed"]:
        print("  not released: no rule allows this type to this recipient (default deny)")
        return 0
    print(f"  rules:      {', '.join(result['rules'])}")
    print(f"  grondslag:  {result['grondslag']}")
    print(f"  doel:       {result['doel']}")
    print("  fields:")
    for f in result["fields"]:
        print(f"    - {f} ({result['classification'][f]})")
    for c in result["conditions"]:
        print(f"  only when:  {c}")
    return 0


Extension = Callable[[Callable[..., argparse.ArgumentParser]], None]


def build_parser(extend: Extension | None = None) -> argparse.ArgumentParser:
    """The command line. `extend` adds commands of an outer layer (the connectors) without
    this package importing it: dependencies point one way."""
    parser = argparse.ArgumentParser(prog="ketenbus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help_: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    p = add("broker", cmd_broker, "Run the embedded Kafka-compatible broker (Tansu, memory only).")
    p.add_argument("--port", type=int, default=None)

    p = add("up", cmd_up, "Start broker (unless KETENBUS_BOOTSTRAP), provision topics, run the router.")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KETENBUS_BOOTSTRAP or embedded)")
    p.add_argument("--policy", help="policy file (default: policy/verstrekkingen.yaml)")
    p.add_argument("--metrics-port", type=int, default=None)
    p.add_argument(
        "--roles",
        default="router,timers",
        help="comma-separated: router, timers (default both), and ingress, webhooks, register",
    )

    schemas_p = add("schemas", lambda a: 2, "Schema tooling.")
    schemas_sub = schemas_p.add_subparsers(dest="schemas_command", required=True)
    from schemas.compat import PACKAGE_DIR, RELEASED_DIR

    for name, fn, help_ in (
        (
            "check",
            cmd_schemas_check,
            "Check classification and BACKWARD compatibility with the released schemas.",
        ),
        ("release", cmd_schemas_release, "Record the current schemas as the released versions."),
    ):
        p = add(name, fn, help_, schemas_sub)
        p.add_argument("--dir", default=str(PACKAGE_DIR), help="directory with the .avsc files")
        p.add_argument("--released", default=str(RELEASED_DIR), help="directory with the released versions")

    p = add("asyncapi", cmd_asyncapi, "Print the AsyncAPI 3.0 document of the bus.")
    p.add_argument("--format", choices=("json", "yaml"), default="json")

    policy_p = add("policy", lambda a: 2, "Data-sharing policy tooling.")
    policy_sub = policy_p.add_subparsers(dest="policy_command", required=True)
    p = add("check", cmd_policy_check, "Validate a policy file (default: the shipped one).", policy_sub)
    p.add_argument("file", nargs="?")
    p = add(
        "explain", cmd_policy_explain, "What a recipient would receive of an event type, and why.", policy_sub
    )
    p.add_argument(
        "type", help="ce_type (nl.ketenbus.huisverbod.opgelegd) or Family.stap (Huisverbod.opgelegd)"
    )
    p.add_argument("recipient")
    p.add_argument("--json", action="store_true")
    p.add_argument("--policy", help="policy file (default: the shipped one)")
    deploy_p = add("deploy", lambda a: 2, "Deployment manifests.")
    deploy_sub = deploy_p.add_subparsers(dest="deploy_command", required=True)
    p = add("render", cmd_deploy_render, "Render topic, ACL and rule manifests from the code.", deploy_sub)
    p.add_argument("--out", default="deploy/k8s", help="output directory (default deploy/k8s)")
    if extend is not None:
        extend(add)
    return parser


def main(argv: list[str] | None = None, extend: Extension | None = None) -> int:
    args = build_parser(extend).parse_args(argv)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
