"""Early starts: slow work begun in the background and taken by the check that needs it."""

from __future__ import annotations

import threading

import pytest

from postdeploy.early import EarlyStarts

WAIT_S = 10


def test_a_check_takes_the_early_result_and_runs_the_work_itself_when_nothing_started_it():
    starts = EarlyStarts()
    starts.start("scan", lambda: "early")
    assert starts.take("scan", lambda: "late") == "early"
    assert starts.take("scan", lambda: "late") == "late"  # taken once
    starts.close()


def test_an_error_of_the_work_is_raised_to_the_check_that_takes_it():
    starts = EarlyStarts()

    def broken() -> str:
        raise RuntimeError("the scan could not connect")

    starts.start("scan", broken)
    starts.wait_all()  # waiting raises nothing: the error belongs to the check
    with pytest.raises(RuntimeError, match="could not connect"):
        starts.take("scan", lambda: "late")
    starts.close()


def test_checks_that_run_alone_wait_for_traffic_but_not_for_quiet_work():
    """``wait_all`` (before a check marked ``alone``) returns while quiet work - a Prometheus
    waiting out its start-up - still runs, and only after the work that sends requests."""
    starts = EarlyStarts()
    traffic_may_end, quiet_may_end = threading.Event(), threading.Event()
    starts.start("hostile", lambda: traffic_may_end.wait(WAIT_S))
    starts.start("prometheus", lambda: quiet_may_end.wait(WAIT_S), quiet=True)
    waiter = threading.Thread(target=starts.wait_all)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "wait_all returned while work that sends requests still ran"
    traffic_may_end.set()
    waiter.join(WAIT_S)
    assert not waiter.is_alive(), "wait_all waited for quiet work"
    quiet_may_end.set()
    assert starts.take("prometheus", lambda: False) is True  # the check still gets it
    starts.close()


def test_what_no_check_took_is_undone_at_the_end():
    starts = EarlyStarts()
    stopped: list[str] = []
    starts.start("server", lambda: "server 1", discard=stopped.append, quiet=True)
    starts.close()
    assert stopped == ["server 1"]


def test_nothing_starts_early_when_early_starts_are_off():
    starts = EarlyStarts(enabled=False)
    assert starts.start("scan", lambda: "early") is None
    assert starts.take("scan", lambda: "late") == "late"
