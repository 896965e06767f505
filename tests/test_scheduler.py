"""The server-wide job queue (ui.jobs.scheduler), the visitor's presence (ui.jobs.visitor) and the per-visitor budget
(ui.jobs.budget), on their own: real threads, real time."""

import threading
import time

import pytest

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.models.model_config import MLPConfig
from ui.jobs import budget, visitor
from ui.jobs.scheduler import Scheduler, Ticket, default_slots, ordinal


def _hold(s: Scheduler, ticket: Ticket, release: threading.Event, order: list) -> threading.Thread:
    def work():
        if s.acquire(ticket):
            order.append(ticket.label)
            release.wait(10)
            s.release(ticket)
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_at_most_slots_run_the_rest_wait_in_order_and_know_their_place():
    s, done, order = Scheduler(2), threading.Event(), []
    tickets = [Ticket(f"job{i}", expected=10.0 * (i + 1)) for i in range(5)]
    threads = []
    for t in tickets:                       # started one by one: the queue order is the arrival order
        threads.append(_hold(s, t, done, order))
        _until(lambda: s.place(t) is not None)
    assert s.counts() == (2, 3) and order == ["job0", "job1"]
    assert s.place(tickets[0]).position == 0
    third, fifth = s.place(tickets[2]), s.place(tickets[4])
    assert (third.position, fifth.position, third.slots) == (1, 3, 2)
    assert third.wait == pytest.approx(10.0, abs=0.5)        # job0 (10 s) frees the first slot
    # job2 (30 s) takes job0's slot at 10 s and frees it at 40; job3 takes job1's at 20 s: job4 starts at 40
    assert fifth.wait == pytest.approx(40.0, abs=0.5)
    assert "you are 3rd in line; about 40 s (2 of 2 slots busy" in fifth.describe()
    done.set()
    for thread in threads:
        thread.join(10)
    assert order == [f"job{i}" for i in range(5)] and s.counts() == (0, 0)


def test_a_cancelled_ticket_leaves_the_queue_and_the_next_one_moves_up():
    s, done, order = Scheduler(1), threading.Event(), []
    first = _hold(s, Ticket("first", 1.0), done, order)
    _until(lambda: s.counts() == (1, 0))
    cancelled = threading.Event()
    gone, later = Ticket("gone", 1.0), Ticket("later", 1.0)
    result = []
    waiter = threading.Thread(target=lambda: result.append(s.acquire(gone, cancelled.is_set)))
    waiter.start()
    _until(lambda: s.place(gone) is not None)
    second = _hold(s, later, done, order)
    _until(lambda: s.place(later) is not None and s.place(later).position == 2)
    cancelled.set()
    waiter.join(5)
    assert result == [False] and s.place(gone) is None and s.place(later).position == 1
    done.set()
    first.join(5)
    second.join(5)
    assert order == ["first", "later"]


def test_slots_come_from_the_machine_or_the_environment(monkeypatch):
    monkeypatch.setenv("DIFFUSION_MAX_JOBS", "3")
    assert default_slots() == 3
    monkeypatch.setenv("DIFFUSION_MAX_JOBS", "0")
    assert default_slots() >= 1
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == ["1st", "2nd", "3rd", "4th", "11th", "12th",
                                                                       "13th", "21st", "22nd"]


def test_a_job_stops_after_its_visitor_is_gone_for_the_grace(monkeypatch):
    connected = {"s1": True}
    monkeypatch.setattr(visitor, "_connected", lambda sid: connected[sid])
    monkeypatch.setattr(visitor, "GRACE_S", 0.3)
    monkeypatch.setattr(visitor, "CHECK_S", 0.0)
    presence = visitor.Presence("s1")
    assert not presence.gone()
    connected["s1"] = False
    assert not presence.gone()                     # a reconnect is still possible
    time.sleep(0.35)
    assert presence.gone()
    connected["s1"] = True                         # came back: the grace starts again
    assert not presence.gone()
    assert not visitor.Presence(None).gone()       # no session (tests, scripts): never gone


def test_the_visitor_budget_refuses_before_anything_is_built(monkeypatch):
    monkeypatch.setenv("DIFFUSION_VISITOR_PARAMETERS", "100000")
    with pytest.raises(ValueError, match=r"a model of 1,6\d\d,\d{3} parameters is above this server's limit of 100,000"):
        budget.check_config(RunConfig(model=MLPConfig(width=512, depth=6)))
    with pytest.raises(ValueError, match="a 2D training set of 10,000,000 points is above this server's limit"):
        budget.check_config(RunConfig(data=DataConfig("moons", n=10_000_000)))
    with pytest.raises(ValueError, match="batch size 65,536 is above this server's limit of 2,048"):
        budget.check_config(RunConfig(train=TrainConfig(batch_size=65_536)))
    monkeypatch.setenv("DIFFUSION_JOB_SECONDS", "60")
    with pytest.raises(ValueError, match="would take about 200 s; a job may take at most 60 s on this server: at "
                                         "most 300 steps"):
        budget.check_time(200.0, "this training", per_step=0.2)
    budget.check_time(59.0, "this training")
