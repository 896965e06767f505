"""The server-wide job queue (ui.jobs.scheduler), the visitor's presence (ui.jobs.visitor), the per-visitor budget
(ui.jobs.budget) and the training job's use of them (ui.jobs.training): real threads, real time, real trainings."""

import os
import threading
import time

import pytest

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.models.model_config import MLPConfig
from diffusion.training.trainer import Trainer
from ui.jobs import budget, timing, training, visitor
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
        budget.check_time(200.0, "this training", steps=1000)
    with pytest.raises(ValueError, match=r"not even the fewest steps offered \(50\) fit with these settings now "
                                         r"\(at most 37\): the server is busy"):     # not "at most 37" beside a slider
        budget.check_time(162.0, "this training", steps=100, fewest=50)              # that starts at 50
    budget.check_time(59.0, "this training")


def test_one_job_per_visitor_and_a_capped_queue():
    s = Scheduler(1, max_waiting=2)
    running, waiting = Ticket("training (mlp)", 10.0, "alice"), Ticket("study sweep", 10.0, "bob")
    assert s.acquire(running)
    s.queue(waiting)
    with pytest.raises(ValueError, match=r"you already have a job running on this server \(training \(mlp\)\); one "
                                         "job per visitor"):
        s.queue(Ticket("study sweep", 1.0, "alice"))           # another tab of the same browser
    with pytest.raises(ValueError, match="you already have a job waiting on this server"):
        s.queue(Ticket("training (unet)", 1.0, "bob"))
    s.queue(Ticket("training (mlp)", 1.0, None))                # no visitor known: not capped per visitor
    with pytest.raises(ValueError, match=r"this server's queue is full \(2 jobs waiting for 1 job slot\); try again"):
        s.queue(Ticket("training (mlp)", 1.0, "carol"))
    assert s.counts() == (1, 2)
    s.release(running)
    s.release(waiting)
    s.queue(Ticket("training (mlp)", 1.0, "alice"))             # alice's job ended: she may queue again


class SlowMeasurement:
    """A measurement of known cost: prepare (the floor) PREPARE_S, each measurement MEASURE_S; it records the
    niceness of the thread it runs on and the steps it measured."""

    names = ("w1",)
    PREPARE_S, MEASURE_S = 0.5, 0.3

    def __init__(self):
        self.nice, self.steps = None, []

    def prepare(self, config):
        self.nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        time.sleep(self.PREPARE_S)

    def __call__(self, run):
        time.sleep(self.MEASURE_S)
        self.steps.append(run.step)
        return {"w1": 1.0}, None


TINY = training.run_config("moons", "linear", 100, 32, 1, 1e-3, 64, 10_000)


def test_a_job_whose_visitor_has_gone_ends_without_its_last_measurement(server, monkeypatch):
    """The last measurement is for the page that shows the curves; with its visitor gone the job gives its slot back
    at once (bench_load once saw 10.5 s from a closed page to the job's end, the bound being 10 s)."""
    monkeypatch.setattr(visitor, "session_id", lambda: "closed tab")
    monkeypatch.setattr(visitor, "_connected", lambda session: False)
    monkeypatch.setattr(visitor, "GRACE_S", 0.0)
    job = _new_job()
    job.start(100_000, None, measure_every=50_000)
    assert job.wait(60) and job.step > 0 and job.snapshot().metrics == []
    assert server.counts() == (0, 0)
    monkeypatch.setattr(visitor, "_connected", lambda session: True)      # the same, with the visitor there
    monkeypatch.setattr(visitor, "GRACE_S", 60.0)
    job = _new_job()
    job.start(20, None, measure_every=50_000)
    assert job.wait(60) and [m["step"] for m in job.snapshot().metrics] == [20]


def _new_job(measurement=training.METRICS_2D, build=None) -> training.TrainingJob:
    x = load_data(TINY.data).x
    return training.TrainingJob.new(TINY, build or (lambda: Trainer(TINY, x)), measurement)


@pytest.fixture
def server(monkeypatch, tmp_path):
    """The job's server: a scheduler of one slot whose job log cannot be written (its folder does not exist); jobs
    one step nicer than the pages (the default 10 starves them on a machine that other processes load)."""
    monkeypatch.setenv("DIFFUSION_JOB_NICE", "1")
    Trainer(TINY, load_data(TINY.data).x)      # the process's first trainer takes seconds (torch's one-off set-up)
    s = Scheduler(1, log=str(tmp_path / "missing" / "jobs.jsonl"))
    monkeypatch.setattr(training, "scheduler", lambda: s)
    return s


def test_a_job_stops_at_its_budget_with_its_first_and_last_measurements_inside_it(server, monkeypatch):
    """Issue 20: the floor and the last measurement ran outside the time budget. With a 3 s budget, a floor of 0.5 s
    and 0.3 s measurements, the slot is held at most 3 s (+ one step), the curve still ends at the last model, and
    the job's thread runs $DIFFUSION_JOB_NICE below the pages'."""
    monkeypatch.setenv("DIFFUSION_JOB_SECONDS", "3")
    measurement = SlowMeasurement()
    job = _new_job(measurement)
    assert job.trainer is None and job.step == 0                # nothing built before a slot
    job.start(None, None, measure_every=200, expected=None)
    assert job.wait(30)
    snap = job.snapshot()
    assert snap.error is None and snap.result.reason == "time" and snap.capped
    assert 2.0 < snap.wall <= 3.0 + 0.1, snap.wall
    assert measurement.steps[-1] == job.trainer.step > 200
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert measurement.nice == min(19, here + 1)
    assert server.counts() == (0, 0)


def test_the_trainer_is_built_when_the_job_gets_its_slot(server):
    held = Ticket("another visitor", 5.0)
    assert server.acquire(held)
    job = _new_job()
    job.start(20, None, measure_every=0)
    time.sleep(0.5)
    assert job.running and job.trainer is None and job.snapshot().place.position == 1   # waiting, nothing built
    with pytest.raises(ValueError, match="has not started training yet"):
        job.checkpoint_zip()
    server.release(held)
    assert job.wait(30) and job.trainer.step == 20


def test_the_slot_is_free_again_on_every_path(server):
    """A job log that cannot be written (counted, never raised while a slot is held), a trainer that fails to build,
    and a job stopped while it waits: each leaves the server with no job running or waiting."""
    job = _new_job()
    job.start(20, None, measure_every=0)
    assert job.wait(30) and job.trainer.step == 20 and server.log_failures == 2
    assert server.counts() == (0, 0)

    def out_of_memory():
        raise RuntimeError("CUDA out of memory")
    broken = _new_job(build=out_of_memory)
    broken.start(20, None, measure_every=0)
    assert broken.wait(30) and "training failed at step 0: RuntimeError: CUDA out of memory" in broken.snapshot().error
    assert server.counts() == (0, 0)

    held = Ticket("another visitor", 5.0)
    assert server.acquire(held)
    waiting = _new_job()
    waiting.start(20, None, measure_every=0)
    time.sleep(0.3)
    waiting.stop()
    assert waiting.wait(5) and waiting.trainer is None and server.counts() == (1, 0)
    server.release(held)
    assert server.counts() == (0, 0)


def test_the_steps_the_budget_message_promises_are_the_steps_a_job_runs(server, monkeypatch):
    """Issue 20: "at most N steps" disagreed with the observed rate by ~3.5x (it left out the measurements). Here the
    N of the refusal and the steps a job capped at the budget really runs agree within 2x (the band issue 18 sets for
    promises on a machine loaded by other processes: a test suite's neighbours are such a load; 1.72 was seen).
    Other processes count as none: the one-minute load average still holds the suite's finished subprocesses (a
    browser, a CLI run), which slowed the promise and not the job (2.17 seen); tests/test_timing.py tests the load."""
    from ui.toy2d.training2d import expected_2d
    monkeypatch.setenv("DIFFUSION_JOB_SECONDS", "4")
    monkeypatch.setattr(timing, "other_processes", lambda: 0.0)
    steps, every = 100_000, 100
    promise = expected_2d(TINY, steps, None, every)
    with pytest.raises(ValueError, match="at most ([\\d,]+) steps") as refused:
        budget.check_time(promise.seconds, "this training", steps)
    promised = int(refused.value.args[0].rsplit("at most ", 1)[1].split(" steps")[0].replace(",", ""))
    job = _new_job()
    job.start(steps, None, measure_every=every, expected=promise)      # capped at the 4 s budget
    assert job.wait(60) and job.snapshot().capped
    ratio = job.trainer.step / promised
    assert 1 / 2 < ratio < 2, (job.trainer.step, promised)


def test_costs_are_timed_on_a_thread_of_their_own_as_jobs_run():
    """on_a_new_thread runs the work off the calling thread (a job's thread, not the main one a cost would otherwise
    be timed on), hands back its value, and raises its error in the caller."""
    caller = threading.get_ident()
    assert training.on_a_new_thread(threading.get_ident) != caller
    assert training.on_a_new_thread(lambda: 42) == 42
    with pytest.raises(ValueError, match="refused"):
        training.on_a_new_thread(lambda: (_ for _ in ()).throw(ValueError("refused")))
