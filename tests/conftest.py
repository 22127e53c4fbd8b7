"""Shared fixtures: one embedded broker per session, a router running against it, a tap on the
output topics and a publisher. Tests isolate themselves by unique case references."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import topics
from streams.broker import EmbeddedBroker
from tests.bus import Publisher, RouterProcess, Tap, case_ref

TEST_PARTITIONS = 3


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        topics.provision(b.bootstrap, TEST_PARTITIONS)
        yield b


@pytest.fixture(scope="session")
def tap(broker: EmbeddedBroker) -> Iterator[Tap]:
    t = Tap(broker.bootstrap)
    yield t
    t.close()


@pytest.fixture(scope="session")
def publisher(broker: EmbeddedBroker) -> Iterator[Publisher]:
    p = Publisher(broker.bootstrap)
    yield p
    p.close()


@pytest.fixture(scope="session")
def router_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("router") / "router.log"


@pytest.fixture(scope="session")
def router(
    broker: EmbeddedBroker, tap: Tap, publisher: Publisher, router_log: Path
) -> Iterator[RouterProcess]:
    """The router (only: no timers firing into the cases under test) with the shipped policy,
    ready once a probe event came through."""
    proc = RouterProcess(broker.bootstrap, log_path=router_log, roles="router").start()
    probe = case_ref("PROBE")
    publisher.event("veilig-thuis", "Melding", {"stap": "ontvangen", "zaak_ref": probe})
    tap.wait_for(probe, topics.EVENTS, timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
def zaak() -> str:
    return case_ref()
