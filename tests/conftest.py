"""Shared fixtures: one real embedded broker per session, a uuid topic set per test, one
Redis per session (the configured one, else a private redis-server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fti.connectors.kafka.clients import ensure_topics
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.settings import BrokerSettings, Settings
from tests.support import make_settings, redis_server


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker on a free port, for the whole test session."""
    with EmbeddedBroker(BrokerSettings(port=free_port())) as running:
        yield running


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    """Settings pointing at the session broker, with this test's topics created."""
    s = make_settings(broker.bootstrap_servers, tmp_path)
    ensure_topics(s.kafka, s.topics)
    return s


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis for the whole session: the configured one (FTI_ONLINE__REDIS_URL, else
    the default redis://127.0.0.1:6379/0) when it answers PING, else a private redis-server
    on a free port, stopped at the end. Tests keep to uuid key prefixes there."""
    with redis_server(Settings().online.redis_url) as url:
        yield url
