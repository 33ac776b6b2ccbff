"""The tests' Redis: a private `redis-server` when nothing answers at the configured address.

redis-server comes with Debian's `redis-server` package; `make test` installs it through
infra/install-redis.sh. A missing binary fails these tests, it never skips them.
"""

from __future__ import annotations

import psutil
import redis

from fti.infra.embedded_broker import free_port
from tests.support import redis_answers, redis_server


def test_a_private_server_starts_where_nothing_answers_and_stops_afterwards() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/3"
    assert not redis_answers(dead)

    with redis_server(dead) as url:
        assert url != dead and url.startswith("redis://127.0.0.1:") and url.endswith("/3")
        client = redis.Redis.from_url(url)
        assert client.ping()
        assert client.set("fti-test-key", "value") and client.get("fti-test-key") == b"value"
        info = client.info("server")
        pid, port = int(info["process_id"]), int(info["tcp_port"])
        assert url == f"redis://127.0.0.1:{port}/3"
        assert client.connection_pool.connection_kwargs["db"] == 3
        client.close()
        assert psutil.Process(pid).name().startswith("redis-server")

    assert not psutil.pid_exists(pid), "the private redis-server outlived its context"
    assert not redis_answers(url)


def test_an_answering_server_is_used_as_it_is() -> None:
    with redis_server(f"redis://127.0.0.1:{free_port()}/0") as live:
        with redis_server(live) as same:
            assert same == live
        assert redis_answers(live)  # not stopped by the inner context: it did not start it
