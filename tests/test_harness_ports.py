"""The test harness's port picker: child processes bind ports it hands out, sometimes again
after a restart, so a port must not be one an outgoing connection can take meanwhile."""

from __future__ import annotations

import socket

import pytest

from collector_harness import _EPHEMERAL, free_port


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    low, high = _EPHEMERAL
    assert all(not low <= port <= high for port in ports)
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_or_handed_out_before_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import collector_harness

    given = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        in_use = busy.getsockname()[1]
        spare = free_port()
        collector_harness._HANDED_OUT.discard(spare)
        # The picker draws a port in use, then one handed out before, then a free one.
        draws = iter([in_use, given, spare])
        monkeypatch.setattr(collector_harness._PORT_RANDOM, "randrange", lambda *_: next(draws))
        assert free_port() == spare
