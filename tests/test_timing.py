"""ui.jobs.timing: promises from measured unit costs, corrected by the load and by the server's own record, and the time
left from the observed rate."""

import ast
import math
import os
import threading
import time
from types import SimpleNamespace

import pytest
from conftest import ROOT

from diffusion.metrics.likelihood import nll_report_2d
from ui.jobs import timing

SLEEP = 0.02     # a unit of work whose duration the load does not change: time.sleep
SLACK = 0.010    # what a sleep may overshoot by on a busy machine (scheduler latency)


def test_the_module_needs_neither_torch_nor_streamlit():
    imported = set()
    for node in ast.walk(ast.parse((ROOT / "ui" / "jobs" / "timing.py").read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"torch", "streamlit", "numpy", "pandas"}


@pytest.mark.parametrize("load, threads, n_cores, expected", [
    (0.0, 1, 2, 1.0),          # an idle machine: no slowdown
    (1.0, 1, 2, 1.0),          # one other process: a core each
    (2.0, 1, 2, 1.5),          # three processes on two cores
    (3.0, 2, 2, 2.5),          # five threads on two cores
    (6.0, 1, 4, 1.75),
])
def test_slowdown_is_the_share_of_the_cores_left(load, threads, n_cores, expected):
    assert timing.slowdown(load, threads, n_cores) == pytest.approx(expected)


@pytest.mark.parametrize("load, n_cores, expected", [(0.0, 2, 2), (0.4, 2, 2), (0.6, 2, 1), (1.2, 2, 1),
                                                      (7.0, 2, 1), (1.0, 8, 7), (0.0, 1, 1)])
def test_free_threads_leaves_the_busy_cores_alone(load, n_cores, expected):
    assert timing.free_threads(load, n_cores) == expected


def test_a_cost_measured_under_load_is_scaled_to_the_load_now():
    n = timing.cores()
    busy = timing.Cost(seconds=1.0, load=3.0 * n, threads=1)     # slowdown (3n + 1) / n then
    assert busy.now(load_now=0.0) == pytest.approx(n / (3 * n + 1))
    assert busy.now(load_now=3.0 * n) == pytest.approx(1.0)
    assert timing.Cost(seconds=1.0, load=0.0).now(load_now=0.0) == 1.0


def test_measure_times_one_unit():
    calls = []
    cost = timing.measure(lambda: (calls.append(1), time.sleep(SLEEP * 4)), units=4, repeats=3, warmup=1)
    assert len(calls) == 4                                # one warm-up, three timed
    assert SLEEP <= cost.seconds <= SLEEP + SLACK
    with pytest.raises(ValueError, match="units"):
        timing.measure(lambda: None, units=0)


def test_measure_fit_separates_a_call_cost_from_a_unit_cost():
    """work(n) sleeps 4 SLEEP + n SLEEP / 4: timed at n = 2 and 10, the line through the two medians gives them back
    (within what two sleeps may overshoot)."""
    fixed, per_unit = timing.measure_fit(lambda n: time.sleep(4 * SLEEP + n * SLEEP / 4), (2, 10), repeats=3)
    assert fixed.seconds == pytest.approx(4 * SLEEP, abs=2 * SLACK)
    assert per_unit.seconds == pytest.approx(SLEEP / 4, abs=2 * SLACK / 8)
    assert timing.expect("fit", (fixed, 1), (per_unit, 6), load_now=fixed.load, record=timing.Record()).seconds \
        == pytest.approx(5.5 * SLEEP, abs=3 * SLACK)


def test_a_promise_from_a_measured_unit_holds():
    """Measure a unit, promise 15 of them, do them: the observed time is within 30% of the promise (the issue's
    bound), and the record then knows the ratio."""
    record = timing.Record()
    cost = timing.measure(lambda: time.sleep(SLEEP), repeats=3)
    promise = timing.expect("sleeping", (cost, 15), fixed=0.05, load_now=cost.load, record=record)
    assert promise.seconds == pytest.approx(15 * cost.seconds + 0.05)
    with timing.timed(promise, record) as clock:
        for _ in range(15):
            time.sleep(SLEEP)
        time.sleep(0.05)
    assert 0.7 <= clock.elapsed() / promise.seconds <= 1.3
    assert record.correction("sleeping") == pytest.approx(clock.elapsed() / promise.base)


def test_the_record_corrects_later_promises_of_the_same_kind_only():
    record = timing.Record(size=3)
    cost = timing.Cost(seconds=1.0)
    for observed in (2.0, 2.2, 9.0):                 # the median resists the odd run
        record.observe("sampling", 1.0, observed)
    assert record.correction("sampling") == pytest.approx(2.2)
    assert timing.expect("sampling", (cost, 10), load_now=0.0, record=record).seconds == pytest.approx(22.0)
    assert timing.expect("training", (cost, 10), load_now=0.0, record=record).seconds == pytest.approx(10.0)
    for observed in (0.1, 0.1, 0.1):                 # only the last `size` promises count; clamped
        record.observe("sampling", 1.0, observed)
    assert record.correction("sampling") == timing.CORRECTION_RANGE[0]
    record.observe("slow", 1.0, 50.0)
    assert record.correction("slow") == timing.CORRECTION_RANGE[1]


def test_an_interrupted_block_teaches_the_record_nothing():
    record = timing.Record()
    promise = timing.Estimate("film", 1.0, 1.0)
    with pytest.raises(KeyboardInterrupt), timing.timed(promise, record):
        raise KeyboardInterrupt
    assert record.correction("film") == 1.0
    with timing.timed(timing.Estimate("film", 10.0, 10.0), record, min_share=0.2):
        pass                                             # a cached result: far faster than promised
    assert record.correction("film") == 1.0


@pytest.mark.parametrize("done, elapsed, expected, left", [
    (0.0, 0.0, 30.0, 30.0),         # nothing done yet: the promise
    (0.0, 40.0, 30.0, 0.0),         # late and nothing done: no negative time
    (0.5, 10.0, 30.0, 10.0),        # half done in 10 s: the observed rate alone
    (0.1, 1.0, 20.0, 14.0),         # early: half the observed total (10 s), half the promise (20 s)
    (1.0, 12.0, 30.0, 0.0),
])
def test_remaining_moves_from_the_promise_to_the_observed_rate(done, elapsed, expected, left):
    assert timing.remaining(done, elapsed, expected) == pytest.approx(left)


def test_texts():
    assert timing.duration(0.2) == "about 1 s"
    assert timing.duration(42.4) == "about 42 s"
    assert timing.duration(200) == "about 3 min"
    assert timing.duration(2 * 3600 + 600) == "about 2 h 10 min"
    assert timing.progress_text(0.5, 10.0, 30.0) == "10 s so far · about 10 s left"
    total = timing.Estimate("a", 10.0, 8.0) + timing.Estimate("b", 5.0, 5.0)
    assert (total.kind, total.seconds, total.base) == ("a + b", 15.0, 13.0)
    parts = sum(timing.Estimate("a", s, s) for s in (1.0, 2.0, 3.0))
    assert (parts.kind, parts.seconds) == ("a", 6.0)


def test_other_processes_leave_out_this_process_own_work():
    """Busy on one thread, this process shows in the machine's load average; `other_processes()` leaves its share
    out (a unit cost just timed is not competition for the work it prices)."""
    timing._own.clear()                                 # the average starts now, at 0, not at an earlier test
    timing.own_load()
    wall, cpu = time.monotonic(), time.process_time()
    while time.process_time() < cpu + 1.5:
        pass
    own = timing.own_load()
    seconds = time.monotonic() - wall
    share = (time.process_time() - cpu) / seconds        # what this process used, measured here
    assert own == pytest.approx(share * (1 - math.exp(-seconds / timing.LOAD_TAU_S)), rel=0.1)   # the kernel's share
    assert 0.0 <= timing.other_processes() <= timing.machine_load()


def test_every_running_job_of_the_server_counts_whichever_session_runs_it():
    """Jobs register the threads they keep busy while they run, from any thread (each visitor's work runs in its
    own); nested blocks add up, and a block that ends, normally or not, leaves the count."""
    assert timing.server_jobs() == 0
    started, release = threading.Event(), threading.Event()

    def another_visitors_training():
        with timing.busy(2):
            started.set()
            release.wait(10)
    worker = threading.Thread(target=another_visitors_training)
    worker.start()
    started.wait(10)
    try:
        assert timing.server_jobs() == 2
        with timing.timed(timing.Estimate("section", 1.0, 1.0), timing.Record(), threads=1):
            assert timing.server_jobs() == 3
        with pytest.raises(KeyboardInterrupt), timing.busy(1):
            assert timing.server_jobs() == 3
            raise KeyboardInterrupt
        assert timing.server_jobs() == 2
    finally:
        release.set()
        worker.join()
    assert timing.server_jobs() == 0


def test_the_load_counts_the_server_own_jobs_as_competition(monkeypatch):
    """The issue's case: another visitor's job burns CPU in this process. It is in this process's own use, which
    `other_processes()` leaves out, and it is counted back as a running job: a promise made meanwhile prices it in
    (before, the server's own jobs counted as idle)."""
    monkeypatch.setattr(timing, "runnable_nice", lambda: [])     # no other process runs: the job is the load
    timing._own.clear()
    timing.own_load()
    stop = threading.Event()

    def burn():
        with timing.busy(1):
            while not stop.is_set():
                pass
    worker = threading.Thread(target=burn)
    worker.start()
    try:
        time.sleep(1.5)
        assert timing.load() == 1.0
        unit = timing.Cost(seconds=1.0, load=0.0, threads=1)
        assert unit.now() >= timing.slowdown(1.0) >= unit.now(load_now=0.0)
    finally:
        stop.set()
        worker.join()
    assert timing.load() == 0.0                                  # the job ended; the load average still holds it


def test_a_likelihood_promise_holds_on_the_shipped_moons_run():
    """The 2D page's likelihood button: the solver's evaluations times the dynamics' costs timed here, for the
    load now, against the time a real ODE likelihood of the shipped run takes (a wide band: the machine is shared,
    and the solver's evaluation count is learned from one earlier likelihood)."""
    from ui.jobs import shipped_runs
    from ui.toy2d import flow2d
    if not shipped_runs.has_shipped("moons"):
        pytest.skip("the shipped moons run is not in this copy")
    run, key = shipped_runs.shipped_run("moons"), shipped_runs.shipped_key("moons")
    promise = flow2d.ode_promise("likelihood", key, run, 64)
    start = time.perf_counter()
    with flow2d.one_thread():
        report = nll_report_2d(run, 64)
    observed = time.perf_counter() - start
    assert report["nfe"] > 0
    assert 0.5 <= observed / promise.base <= 2.0, (observed, promise)     # before the record's correction, which
    # earlier tests of the same process teach (the app's likelihood button)


def test_other_processes_weigh_by_their_niceness_against_the_work(monkeypatch):
    """The loaded pass of bench_promises: 4 busy processes at nice 0 leave a job at nice 10 (the scheduler's) about a
    tenth of a core each shares with them, so its promise counts each as 1.25^10 = 9.3 threads of its own weight; at
    nice 10 they weigh as much as the job, and against a page's work at nice 0 a tenth."""
    monkeypatch.setattr(timing, "other_processes", lambda: 4.0)
    monkeypatch.setattr(timing, "runnable_nice", lambda: [0, 0, 0, 0])
    assert timing.load() == pytest.approx(4.0)
    assert timing.load(nice=10) == pytest.approx(4 * 1.25 ** 10)
    unit = timing.Cost(seconds=1.0, load=0.0, threads=1)
    promise = timing.expect("job", (unit, 10), record=timing.Record(), nice=10)
    assert promise.seconds == pytest.approx(10 * (4 * 1.25 ** 10 + 1) / timing.cores())
    monkeypatch.setattr(timing, "runnable_nice", lambda: [10, 10, 10, 10])
    assert timing.load(nice=10) == pytest.approx(4.0)
    assert timing.load() == pytest.approx(4 / 1.25 ** 10)
    monkeypatch.setattr(timing, "runnable_nice", lambda: [0])                # one runs now: the others ended
    assert timing.load() == pytest.approx(1.0)
    monkeypatch.setattr(timing, "runnable_nice", lambda: [])                 # none: the load average's is past work
    assert timing.load(nice=10) == 0.0


def test_a_cost_timed_in_a_nicer_thread_is_not_slowed_down_twice(monkeypatch):
    """The study page times its error budget's costs in the script thread a sweep just ran in at the job niceness.
    The cost carries the load that thread saw, so the job's promise at that niceness is the time measured, not 7.6x
    it (the bench's budget at n = 256 under load 4 was promised 1,366 s, 403 s from a thread at nice 0)."""
    monkeypatch.setattr(timing, "other_processes", lambda: 4.0)
    monkeypatch.setattr(timing, "runnable_nice", lambda: [0, 0, 0, 0])
    cost = {}

    def nicer() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + 10)
        cost["in"] = timing.measure(lambda: time.sleep(SLEEP), repeats=1, warmup=0)
    worker = threading.Thread(target=nicer)
    worker.start()
    worker.join()
    job_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + 10     # the worker's
    assert cost["in"].load == pytest.approx(timing.load(nice=job_nice))
    promise = timing.expect("job", (cost["in"], 1), record=timing.Record(), nice=job_nice)
    assert promise.seconds == pytest.approx(cost["in"].seconds)


def test_runnable_nice_reads_the_niceness_of_a_busy_process():
    """A real process busy 7 steps nicer than this one is seen running (or waiting to run) with its niceness."""
    import os
    import subprocess
    import sys
    nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 7)
    busy = subprocess.Popen([sys.executable, "-c", "import os\nos.nice(7)\nwhile True: pass"])
    try:
        deadline = time.monotonic() + 10
        while nice not in timing.runnable_nice() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert nice in timing.runnable_nice() or nice in timing.runnable_nice()
    finally:
        busy.kill()
        busy.wait()


def test_free_threads_counts_the_threads_running_now_not_the_load_average(monkeypatch):
    """A job decides its threads when it starts: from the threads running then, not from the minute's load average,
    which still holds work that ended (a promise timed on 1 thread, its job on 2, read 0.54)."""
    monkeypatch.setattr(timing, "machine_load", lambda: 1.8)
    monkeypatch.setattr(timing, "cores", lambda: 2)
    monkeypatch.setattr(timing, "runnable_nice", lambda: [])
    assert timing.free_threads() == 2
    monkeypatch.setattr(timing, "runnable_nice", lambda: [0])
    assert timing.free_threads() == 1
    monkeypatch.setattr(timing, "runnable_nice", lambda: [19, 19])       # 1.5% of a nice-0 thread each
    assert timing.free_threads() == 2
    monkeypatch.setattr(timing, "runnable_nice", lambda: [])
    with timing.busy(1):                                                 # this server's own job
        assert timing.free_threads() == 1


def test_own_load_averages_as_the_kernel_load_average_does(monkeypatch):
    """Two CPUs busy for 50 s, then a minute idle: the kernel's one-minute load average (exponential, time constant
    60 s) still holds 2 (1 - e^-50/60) e^-1 = 0.42 of the burst, and so does own_load, read every 5 s, so the
    server's own finished work does not read as other processes' (a one-minute window read 0)."""
    clock = {"wall": 1000.0, "cpu": 10.0}
    monkeypatch.setattr(timing, "time", SimpleNamespace(monotonic=lambda: clock["wall"], process_time=lambda: clock["cpu"]))
    monkeypatch.setattr(timing, "_own", [])
    timing.own_load()
    for busy in [2.0] * 10 + [0.0] * 12:                  # 5 s steps
        clock["wall"] += 5.0
        clock["cpu"] += 5.0 * busy
        timing.own_load()
    held = 2 * (1 - math.exp(-50 / 60)) * math.exp(-1)
    assert timing.own_load() == pytest.approx(held, rel=0.01) and held == pytest.approx(0.42, abs=0.01)
