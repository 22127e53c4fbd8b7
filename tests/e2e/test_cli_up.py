"""`ketenbus up` as an operator runs it: its own embedded broker, the addresses printed, metrics
served, events routed, and a clean stop on SIGINT."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from streams import topics
from tests.bus import REPO, Publisher, Tap, case_ref
from tests.samples import sample

pytestmark = pytest.mark.integration


def read_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        if m := re.search(pattern, line):
            return m
    raise AssertionError(f"`ketenbus up` printed no line matching {pattern!r}")


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_up_runs_its_own_broker_routes_serves_metrics_and_stops_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KETENBUS_BOOTSTRAP"}
    env["KETENBUS_APP_ID"] = "t-cli-up"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "up", "--metrics-port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        m = read_line(proc, r"bootstrap=(\S+) metrics=(\S+)")
        bootstrap, metrics_url = m.group(1), m.group(2)
        tap, publisher = Tap(bootstrap), Publisher(bootstrap)
        try:
            zaak = case_ref()
            publisher.event("gemeente", "Huisverbod", sample("Huisverbod", "opgelegd", zaak))
            publisher.raw(topics.inbox("politie"), zaak.encode(), b"not avro", [])
            tap.wait_for(zaak, topics.outbox("politie"), timeout=60)
            tap.wait_for(zaak, topics.DLQ)
            assert metric(metrics_url, 'ketenbus_events_in_total{family="Huisverbod"') >= 1
            assert metric(metrics_url, 'ketenbus_policy_decisions_total{outcome="released"') >= 1
            assert metric(metrics_url, 'ketenbus_dlq_total{reason="envelope.missing_attribute"}') >= 1
            assert metric(metrics_url, "ketenbus_e2e_latency_seconds_count") >= 1
        finally:
            tap.close()
            publisher.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        host, port = bootstrap.split(":")
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), 1).close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_broker_command_serves_kafka_on_the_given_port_and_stops_cleanly() -> None:
    from kafka.admin import KafkaAdminClient

    from streams.broker import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "broker", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        read_line(proc, rf"127\.0\.0\.1:{port}")
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        try:
            assert isinstance(admin.list_topics(), list)  # speaks the Kafka protocol
        finally:
            admin.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), 1).close()
    finally:
        if proc.poll() is None:
            proc.kill()
