"""How long work will take on this server, and how long it has left: every time the app promises comes from here.

A promise is a unit cost measured on this server (a training step, an image through the network: `measure`) times
the work, corrected twice: by the load now against the load when the cost was measured (`Cost.now`: the cores are
shared evenly between the threads that want them, other processes' and every running job of this server's: `load`),
and by how this server's recent work of the same
kind compared with its own promises (`Record`: the median ratio of observed to promised time, so overheads no unit
cost sees, like drawing, are learned after one run). While work runs, `remaining` turns the observed rate into the
time left. Pure Python at import (no torch, no streamlit), so that the package's callers, the pages' helpers and
the benchmarks share it.

A page uses it in three moves:

    cost = timing.measure(lambda: one_step(), units=1)            # cache it with the inputs that set it
    promise = timing.expect("training unet", (cost, steps), fixed=setup_seconds)
    st.caption(f"... {promise.text()} ...")                        # "about 40 s"
    with timing.timed(promise) as clock:                           # records observed / promised when the block ends
        for i in range(steps):
            ...
            bar.progress(i / steps, timing.progress_text(i / steps, clock.elapsed(), promise.seconds))
"""

import glob
import math
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

RECORD_SIZE = 8                  # the last promises of each kind a correction is drawn from
CORRECTION_RANGE = (0.5, 3.0)    # a correction outside this says more about one odd run than about the server
TRUST_OBSERVED_AT = 0.2          # `remaining` trusts the observed rate alone once this share of the work is done
LOAD_TAU_S = 60.0                # the kernel's one-minute load average: an exponential average, time constant 60 s
OWN_MIN_S = 0.5                  # own_load's shortest interval between two readings (shorter says nothing)
PROC_THREADS = os.path.isdir("/proc/self/task")   # Linux: each thread's state and niceness can be read


def cores() -> int:
    """CPU cores this process may run on (its affinity, not the machine's count, e.g. in a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:      # macOS, Windows
        return max(1, os.cpu_count() or 1)


def machine_load() -> float:
    """Processes wanting a CPU, averaged over the last minute (the OS's load average; 0 where it has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):   # Windows
        return 0.0


_own: list = [time.monotonic(), time.process_time(), 0.0]   # at own_load's last reading: wall, CPU seconds, average
_own_lock = threading.Lock()
_jobs: dict[int, int] = {}            # id of a running block of this server's work -> the threads it keeps busy
_jobs_lock = threading.Lock()
NICE_TTL_S = 1.0                      # runnable_nice reads /proc again after this long
_nice_seen: tuple[float, list[int]] = (-math.inf, [])   # (when, what) runnable_nice read last


def own_load() -> float:
    """CPUs this process kept busy, averaged as the kernel averages its one-minute load (exponentially, time constant
    LOAD_TAU_S) from 0 when this module was imported, from its CPU time over wall time between readings (at least
    OWN_MIN_S apart). A plain one-minute window forgets a burst that the kernel's average still holds (e^-1 of it a
    minute later), and the server's own finished work then reads as other processes'."""
    now, cpu = time.monotonic(), time.process_time()
    with _own_lock:
        if not _own:
            _own[:] = [now, cpu, 0.0]
        then, cpu_then, average = _own
        if now - then >= OWN_MIN_S:
            decay = math.exp(-(now - then) / LOAD_TAU_S)
            average = average * decay + (cpu - cpu_then) / (now - then) * (1 - decay)
            _own[:] = [now, cpu, average]
        return average


def other_processes() -> float:
    """Processes other than this server wanting a CPU: the machine's load average less this process's own use,
    averaged the same way (so the server's finished bursts, a unit cost just timed, do not count)."""
    return max(0.0, machine_load() - own_load())


def server_jobs() -> int:
    """Threads this server's running work keeps busy now: every visitor's trainings, sweeps and sections (`busy`)."""
    with _jobs_lock:
        return sum(_jobs.values())


@contextmanager
def busy(threads: int = 1) -> Iterator[None]:
    """Count the block as `threads` threads of this server's work while it runs (every promise made meanwhile, in
    any session, sees it as load)."""
    token = object()
    with _jobs_lock:
        _jobs[id(token)] = threads
    try:
        yield
    finally:
        with _jobs_lock:
            del _jobs[id(token)]


def cfs_weight(nice: int) -> float:
    """The Linux scheduler's weight of a thread at `nice`: 1024 at 0, 1.25 times less a step (110 at 10), so a
    thread at nice 10 beside one at 0 gets about a tenth of their core."""
    return 1024 / 1.25 ** nice


def runnable_nice() -> list[int]:
    """The niceness of each thread of the other processes that runs or waits to run now (Linux /proc; [] elsewhere
    or when none does), read again at most every NICE_TTL_S: a page asks with every promise it draws, and a scan
    costs about 5 ms at 100 threads (the load average it weighs is a one-minute average anyway)."""
    global _nice_seen
    if time.monotonic() - _nice_seen[0] >= NICE_TTL_S:
        _nice_seen = (time.monotonic(), _scan_runnable_nice())
    return _nice_seen[1]


def _scan_runnable_nice() -> list[int]:
    own, nices = f"/proc/{os.getpid()}/", []
    for path in glob.glob("/proc/[0-9]*/task/[0-9]*/stat"):
        if path.startswith(own):
            continue
        try:
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()    # after the command's name: state (field 3) on
        except (OSError, IndexError):                           # a thread that ended meanwhile
            continue
        if fields[0] == "R":
            nices.append(int(fields[16]))                        # field 19: nice
    return nices


def load(nice: int = 0) -> float:
    """Runnable threads competing for the cores with work at `nice`, in threads of that work's weight: other
    processes, at most as many as run now (runnable_nice: the load average still holds work that ended, and a job's
    promise once counted such a phantom 9.3 times, 0.52x), each weighing as much as the threads running now against
    the work's own, plus every job of this server that runs now (its own visitors' work competes like anyone
    else's). A training job runs at the scheduler's job niceness: beside other processes at nice 0 it gets a tenth
    of a core, which its promise must say. Without /proc (no view of threads): the load average at nice 0."""
    if not PROC_THREADS:
        return other_processes() * cfs_weight(0) / cfs_weight(nice) + server_jobs()
    seen = runnable_nice()
    others = min(other_processes(), len(seen))
    return (others * statistics.mean(map(cfs_weight, seen)) / cfs_weight(nice) if seen else 0.0) + server_jobs()


def slowdown(load: float, threads: int = 1, n_cores: int | None = None) -> float:
    """How much slower CPU work on `threads` threads runs beside `load` other runnable processes than on an idle
    machine, when the kernel shares the cores evenly: max(1, (load + threads) / cores)."""
    return max(1.0, (max(0.0, load) + threads) / (n_cores or cores()))


def running_now() -> float:
    """Threads competing for the cores now, in threads at nice 0: the other processes' that run or wait to run
    (runnable_nice, weighed by niceness; the load average's estimate where /proc has no threads) and this server's
    jobs."""
    if not PROC_THREADS:
        return other_processes() + server_jobs()
    return sum(cfs_weight(n) for n in runnable_nice()) / cfs_weight(0) + server_jobs()


def free_threads(load: float | None = None, n_cores: int | None = None) -> int:
    """Threads a CPU job should use now: the cores the threads running now leave free (running_now), at least one.
    A snapshot, not the load average: that one still holds work that ended up to a minute ago, so a page timed a
    step on 1 thread and its job, starting a moment later, took 2 (0.54x its promise). OpenMP threads that must share
    a busy core wait for each other at every barrier: on 2 cores with two other busy processes, a U-Net training
    step took 3-6x longer on 2 threads than on 1."""
    n = n_cores or cores()
    busy = load if load is not None else running_now()
    return max(1, min(n, math.floor(n - busy + 0.5)))


@dataclass(frozen=True)
class Cost:
    """What one unit of work costs on this server: `seconds`, measured while the load was `load`, on `threads`."""

    seconds: float
    load: float = 0.0
    threads: int = 1

    def now(self, load_now: float | None = None) -> float:
        """Seconds per unit at the current load (or load_now): the measured seconds scaled by the change in
        slowdown between then and now."""
        current = load() if load_now is None else load_now
        return self.seconds * slowdown(current, self.threads) / slowdown(self.load, self.threads)


def thread_nice() -> int:
    """The calling thread's niceness (Linux sets it per thread: a page's script thread runs nicer once a job of the
    scheduler ran in it, ui.jobs.scheduler.lower_priority); 0 where it cannot be read."""
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (AttributeError, OSError):
        return 0


def measure(work: Callable[[], object], units: float = 1.0, repeats: int = 3, warmup: int = 1,
            threads: int = 1) -> Cost:
    """The cost of one unit of `work` (one call does `units` units): the median of `repeats` timed calls after
    `warmup` untimed ones, with the load when it was measured as this thread saw it (at its own niceness: a cost
    timed in a thread a sweep had made nicer, and scaled to a job's niceness again, once made the study's error
    budget promise 5.7x too long under load 4). threads: how many torch threads the work ran on."""
    if units <= 0 or repeats < 1:
        raise ValueError(f"measure needs units > 0 and repeats >= 1, got units={units}, repeats={repeats}")
    for _ in range(warmup):
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return Cost(statistics.median(times) / units, load(thread_nice()), threads)


def measure_fit(work: Callable[[int], object], sizes: tuple[int, int], repeats: int = 2, warmup: int = 1,
                threads: int = 1) -> tuple[Cost, Cost]:
    """(fixed cost per call, cost per unit) of work(n), from calls timed at two sizes (a straight line through the
    two medians; neither below 0): a call's overhead and its share per image differ by orders of magnitude between
    the small batches of a filmstrip and the large ones of a measurement."""
    small, large = (measure(lambda n=n: work(n), repeats=repeats, warmup=warmup, threads=threads) for n in sizes)
    per_unit = max(0.0, (large.seconds - small.seconds) / (sizes[1] - sizes[0]))
    fixed = max(0.0, small.seconds - sizes[0] * per_unit)
    return Cost(fixed, small.load, threads), Cost(per_unit, small.load, threads)


def duration(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1 h 20 min'; 'about 1 s' at least."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min" if minutes else f"about {hours} h"


@dataclass(frozen=True)
class Estimate:
    """A promise: `seconds` of work of `kind`, `base` before the server's correction for that kind."""

    kind: str
    seconds: float
    base: float

    def text(self) -> str:
        return duration(self.seconds)

    def __add__(self, other: "Estimate") -> "Estimate":
        kind = self.kind if self.kind == other.kind else f"{self.kind} + {other.kind}"
        return Estimate(kind, self.seconds + other.seconds, self.base + other.base)

    def __radd__(self, other: "Estimate | int") -> "Estimate":
        """sum(estimates) works (it starts from 0)."""
        return self if other == 0 else other + self


@dataclass
class Record:
    """This server's promises against what happened, per kind of work (thread-safe: every visitor adds to it)."""

    size: int = RECORD_SIZE
    _ratios: dict[str, deque] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, kind: str, base: float, seconds: float) -> None:
        """Work of `kind` promised `base` seconds (before correction) and took `seconds`."""
        if base > 0 and seconds > 0:
            with self._lock:
                self._ratios.setdefault(kind, deque(maxlen=self.size)).append(seconds / base)

    def clear(self) -> None:
        """Forget every observation (a benchmark's fresh start)."""
        with self._lock:
            self._ratios.clear()

    def correction(self, kind: str) -> float:
        """The median observed / promised ratio of recent work of `kind`, within CORRECTION_RANGE (1 with none)."""
        with self._lock:
            ratios = list(self._ratios.get(kind, ()))
        if not ratios:
            return 1.0
        return min(max(statistics.median(ratios), CORRECTION_RANGE[0]), CORRECTION_RANGE[1])


RECORD = Record()     # the server's: one per process


def expect(kind: str, *work: tuple[Cost, float], fixed: float = 0.0, load_now: float | None = None,
           record: Record = RECORD, nice: int = 0) -> Estimate:
    """The promise for work of `kind` that will run at `nice` (a scheduler job's: scheduler.job_nice()): each
    (cost, units) at the current load, plus `fixed` seconds, times the server's correction for that kind."""
    current = load(nice) if load_now is None else load_now
    base = sum(cost.now(current) * units for cost, units in work) + fixed
    return Estimate(kind, base * record.correction(kind), base)


def remaining(done: float, elapsed: float, expected: float) -> float:
    """Seconds left after `elapsed` seconds with a share `done` (0..1) of the work done: the promise at first, the
    observed rate (elapsed / done) alone once TRUST_OBSERVED_AT of the work is done, a blend in between."""
    if done >= 1:
        return 0.0
    if done <= 0:
        return max(0.0, expected - elapsed)
    trust = min(1.0, done / TRUST_OBSERVED_AT)
    total = trust * elapsed / done + (1 - trust) * max(expected, elapsed)
    return max(0.0, total - elapsed)


def progress_text(done: float, elapsed: float, expected: float) -> str:
    """'12 s so far · about 30 s left' for a progress bar."""
    return f"{elapsed:.0f} s so far · {duration(remaining(done, elapsed, expected))} left"


class Clock:
    """Seconds since a timed block started (frozen when it ends)."""

    def __init__(self):
        self.start, self.end = time.perf_counter(), None

    def elapsed(self) -> float:
        return (self.end or time.perf_counter()) - self.start


@contextmanager
def timed(promise: Estimate, record: Record = RECORD, min_share: float = 0.0, threads: int = 1) -> Iterator[Clock]:
    """Time a block of work that was promised, counted as `threads` threads of the server's load while it runs: when
    it ends normally, the record learns how long it took against the promise. An interrupted block teaches nothing,
    nor does one faster than min_share of its promise (a result served from a cache says nothing about the server)."""
    clock = Clock()
    with busy(threads):
        yield clock
    clock.end = time.perf_counter()
    if clock.elapsed() >= min_share * promise.base:
        record.observe(promise.kind, promise.base, clock.elapsed())
