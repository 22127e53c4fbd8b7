"""A real Prometheus (Debian's `prometheus` binary, on a free loopback port) scrapes a running
router and timer worker (`ketenbus up --roles ...` against the embedded broker) and a consumer-lag
reporter, evaluates the shipped alert rules, and answers every query of the Grafana dashboard
with data. Plus the lag measurement itself, exactly, against the embedded broker."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, start_http_server

from streams import lag, metrics, topics
from streams.broker import EmbeddedBroker, free_port, wait_for_port
from tests.bus import REPO, Publisher, case_ref, require_tool
from tests.samples import sample

pytestmark = pytest.mark.integration

DASHBOARD = REPO / "deploy" / "grafana" / "ketenbus.json"
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
APP_ID = "t-scrape"


def prometheus_binary() -> str:
    return require_tool("prometheus")


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def wait_ready(self, timeout: float) -> None:
        """The port opens before the storage is ready: until then queries answer 503."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:  # URLError and HTTPError (503) alike
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus not ready after {timeout}s")
            time.sleep(0.2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def wait(self, expr: str, check: Any = bool, timeout: float = 45.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if check(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"Prometheus gave no matching answer to {expr!r} in {timeout}s: {result}")


def worker(bootstrap: str, role: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KETENBUS_BOOTSTRAP": bootstrap, "KETENBUS_APP_ID": APP_ID}
    out = open(log, "ab")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "up", "--roles", role, "--metrics-port", str(port)],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=out,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _LagOnly:
    """Serves only the consumer-lag gauge, so this test process adds no other ketenbus series."""

    def collect(self) -> Any:
        return metrics.CONSUMER_LAG.collect()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Prometheus]]:
    binary = prometheus_binary()
    procs: list[subprocess.Popen[bytes]] = []
    reporter = None
    lag_server = None
    with EmbeddedBroker() as broker:
        topics.provision(broker.bootstrap, 3)
        try:
            ports = {"router": free_port(), "timers": free_port()}
            for role, port in ports.items():
                procs.append(worker(broker.bootstrap, role, port, tmp_path / f"{role}.log"))
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_LagOnly())
            lag_server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
            reporter = lag.start_lag_reporter(broker.bootstrap, lag.consumer_groups(APP_ID), interval=1.0)
            targets = [
                {"targets": [f"127.0.0.1:{port}"], "labels": {"role": role}} for role, port in ports.items()
            ]
            targets.append(
                {"targets": [f"127.0.0.1:{lag_server.server_address[1]}"], "labels": {"role": "lag"}}
            )
            config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [{"job_name": "ketenbus", "static_configs": targets}],
            }
            (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
            web = free_port()
            procs.append(
                subprocess.Popen(
                    [
                        binary,
                        f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / 'data'}",
                        f"--web.listen-address=127.0.0.1:{web}",
                    ],
                    stdout=open(tmp_path / "prometheus.log", "ab"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
            wait_for_port("127.0.0.1", web, 30)
            prometheus = Prometheus(f"http://127.0.0.1:{web}")
            prometheus.wait_ready(30)
            yield broker.bootstrap, prometheus
        finally:
            if reporter is not None:
                reporter.stop()
            if lag_server is not None:
                lag_server.shutdown()
            for proc in reversed(procs):
                stop(proc)


CONNECTOR_METRIC = re.compile(r"ketenbus_(ingress|webhook|register)_")


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", "1m"))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def test_prometheus_scrapes_the_workers_answers_the_dashboard_and_fires_alerts(
    stack: tuple[str, Prometheus],
) -> None:
    bootstrap, prom = stack
    started = time.monotonic()
    prom.wait('up{job="ketenbus"} == 1', lambda r: len(r) == 3, timeout=60)

    publisher = Publisher(bootstrap)
    try:
        now = dt.datetime.now(dt.UTC)

        def wave() -> None:
            for family, step, partner in (
                ("Huisverbod", "opgelegd", "gemeente"),
                ("Melding", "ontvangen", "veilig-thuis"),
            ):
                zaak = case_ref("SCRAPE")
                publisher.event(partner, family, sample(family, step, zaak, tijdstip=dt.datetime.now(dt.UTC)))
            for _ in range(3):
                publisher.raw(topics.inbox("politie"), b"SCRAPE", b"not avro", [])

        # First wave creates the series; the second, once Prometheus has them, makes rates positive.
        wave()
        prom.wait("ketenbus_events_in_total", lambda r: len(r) >= 2)
        zaak = case_ref("SCRAPE")
        alarm = sample("SlachtofferdeviceAlert", "alarm", zaak, tijdstip=now - dt.timedelta(minutes=5))
        publisher.event("alarmcentrale", "SlachtofferdeviceAlert", alarm)  # long unacknowledged
        wave()
    finally:
        publisher.close()

    prom.wait(
        'sum(rate(ketenbus_events_in_total{family="Huisverbod"}[1m]))',
        lambda r: values(r) and values(r)[0] > 0,
    )
    p95 = prom.wait(
        "histogram_quantile(0.95, sum by (le) (rate(ketenbus_e2e_latency_seconds_bucket[1m])))",
        lambda r: r and math.isfinite(values(r)[0]),
    )
    assert 0 < values(p95)[0] <= 60
    prom.wait('ketenbus_timers_pending{role="timers"}')
    prom.wait('ketenbus_escalations_total{timer="device-bevestiging", role="timers"}')
    lags = prom.wait('ketenbus_consumer_lag_records{role="lag"}')
    assert {r["metric"]["group"] for r in lags} <= set(lag.consumer_groups(APP_ID))

    # The connectors' panels are fed by processes this stack does not run (ingress, webhooks,
    # register: they need API keys, an HTTPS endpoint, a database); the connector tests check
    # their metrics in process. Every other panel must have data.
    ours = [(t, e) for t, e in dashboard_queries() if not CONNECTOR_METRIC.search(e)]
    assert len(ours) < len(dashboard_queries())
    empty = [(title, expr) for title, expr in ours if not prom.query(expr)]
    assert not empty, f"dashboard queries without data: {empty}"

    firing = prom.wait(
        'ALERTS{alertstate="firing"}',
        lambda r: (
            {"KetenbusDeviceAlarmUnacknowledged", "KetenbusDeadLetterGrowth"}
            <= {a["metric"]["alertname"] for a in r}
        ),
    )
    names = {a["metric"]["alertname"] for a in firing}
    assert "KetenbusWorkerDown" not in names and "KetenbusRouterStalled" not in names
    dlq = next(a for a in firing if a["metric"]["alertname"] == "KetenbusDeadLetterGrowth")
    assert dlq["metric"]["reason"] == "envelope.missing_attribute"
    assert time.monotonic() - started < 90


# --- the lag measurement --------------------------------------------------------------------------


def test_lag_snapshot_counts_records_behind_the_committed_offset() -> None:
    with EmbeddedBroker() as broker:
        topics.provision(broker.bootstrap, 3)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        # one record per request: the embedded broker's end offset is exact only then
        for i in range(7):
            producer.send(topics.EVENTS, key=b"k", value=b"v%d" % i, partition=1).get(10)
        producer.send(topics.DLQ, key=b"k", value=b"v", partition=0).get(10)
        producer.close()
        committer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="lt-router")
        committer.commit({TopicPartition(topics.EVENTS, 1): OffsetAndMetadata(2, "", -1)})
        committer.commit({TopicPartition(topics.DLQ, 0): OffsetAndMetadata(1, "", -1)})
        committer.close()

        snapshot = lag.lag_snapshot(broker.bootstrap, ["lt-router", "lt-timers"])
        assert snapshot == {("lt-router", topics.EVENTS, 1): 5, ("lt-router", topics.DLQ, 0): 0}

        reporter = lag.LagReporter(broker.bootstrap, ["lt-router"], interval=1.0)
        try:
            reporter.report_once()
            assert metrics.CONSUMER_LAG.labels("lt-router", topics.EVENTS, "1")._value.get() == 5
            committer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="lt-router")
            committer.commit({TopicPartition(topics.EVENTS, 1): OffsetAndMetadata(7, "", -1)})
            committer.close()
            assert reporter.report_once()[("lt-router", topics.EVENTS, 1)] == 0
            assert metrics.CONSUMER_LAG.labels("lt-router", topics.EVENTS, "1")._value.get() == 0
        finally:
            reporter.stop()


def test_lag_reporter_thread_sets_the_gauge_and_survives_a_broker_outage() -> None:
    broker = EmbeddedBroker().start()
    try:
        topics.provision(broker.bootstrap, 3)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send(topics.KLOK, value=b"t", partition=0).get(10)
        producer.close()
        committer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="lt2-timers")
        committer.commit({TopicPartition(topics.KLOK, 0): OffsetAndMetadata(0, "", -1)})
        committer.close()
        reporter = lag.start_lag_reporter(
            broker.bootstrap, ["lt2-timers"], interval=0.2, request_timeout_ms=2000
        )
        try:
            deadline = time.monotonic() + 20
            gauge = metrics.CONSUMER_LAG.labels("lt2-timers", topics.KLOK, "0")
            while gauge._value.get() != 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert gauge._value.get() == 1
            broker.kill()
            time.sleep(1.0)  # rounds fail while the broker is gone
            assert reporter.running
        finally:
            reporter.stop(20)
        assert not reporter.running
    finally:
        broker.stop()
