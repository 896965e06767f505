"""The server-wide limit on long work: at most `slots` jobs (trainings, sweeps) run at once, in every session
together; the others wait in one first-come queue and can say where they stand ("you are 2nd; about 40 s"). One
Scheduler per server process (`scheduler()`); its size comes from the machine (half the CPU cores, plus two per GPU)
unless $DIFFUSION_MAX_JOBS sets it. With $DIFFUSION_JOB_LOG set, every job's start and end is appended to that file
as a JSON line (time, event, job, running and waiting counts): the operator's record, and the load test's.

A job joins the queue on the page's own thread (`queue`), so a refusal reaches the visitor as an error box: at most
`max_waiting` jobs wait ($DIFFUSION_MAX_WAITING, default WAITING_PER_SLOT per slot), and a visitor (ui.visitor's key:
their browser, across its tabs, where the server can tell) has at most one job running or waiting. The thread doing
the work runs below the threads that draw pages (`lower_priority`, $DIFFUSION_JOB_NICE), so a new visitor's page is
drawn while every slot trains. A slot is given back on every path: a failed log write is counted and skipped, never
raised while a slot is held.
"""

import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ui.jobs import timing

POLL_S = 0.2             # how often a waiting job checks whether it was cancelled
WAITING_PER_SLOT = 4     # default queue cap: jobs waiting per slot (each may run the whole job budget)
JOB_NICE = 10            # default niceness added to a job's thread (19 is the lowest priority)


def default_slots() -> int:
    """$DIFFUSION_MAX_JOBS, else half the CPU cores (at least one) plus two per GPU."""
    value = os.environ.get("DIFFUSION_MAX_JOBS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    import torch
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return max(1, (os.cpu_count() or 1) // 2) + 2 * gpus


def _variable(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def job_nice() -> int:
    """How many steps nicer than the pages a job runs: JOB_NICE, or $DIFFUSION_JOB_NICE (0: the same priority)."""
    return _variable("DIFFUSION_JOB_NICE", JOB_NICE) if sys.platform == "linux" else 0


def lower_priority() -> None:
    """Run the calling thread job_nice() steps nicer than now (Linux: per thread; the OpenMP threads it starts
    inherit it). Elsewhere nothing changes."""
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, timing.thread_nice() + job_nice()))


@dataclass
class Ticket:
    """One job's place: what it is, how long it is expected to take, and when it got a slot."""

    label: str
    expected: float                       # seconds, the job's estimate of its own duration
    visitor: str | None = None            # who asked (ui.visitor.visitor_key); None: not capped per visitor
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    started: float | None = None          # time.monotonic() when it got a slot


@dataclass(frozen=True)
class Place:
    """Where a ticket stands: position 0 = running, k = k-th in the queue; wait = expected seconds to a slot."""

    position: int
    wait: float
    running: int
    waiting: int
    slots: int

    def describe(self) -> str:
        if self.position == 0:
            return "running"
        return (f"waiting for a free slot: you are {ordinal(self.position)} in line; about {self.wait:.0f} s "
                f"({self.running} of {self.slots} slots busy on this server)")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Scheduler:
    """A counting semaphore with a visible FIFO queue of at most max_waiting tickets (thread-safe)."""

    def __init__(self, slots: int, log: str | None = None, max_waiting: int | None = None):
        if slots < 1:
            raise ValueError(f"slots={slots} must be at least 1")
        self.slots, self.log = slots, log
        self.max_waiting = WAITING_PER_SLOT * slots if max_waiting is None else max_waiting
        self.log_failures = 0                     # job log lines that could not be written
        self._cond = threading.Condition()
        self._running: list[Ticket] = []
        self._waiting: list[Ticket] = []

    def queue(self, ticket: Ticket) -> None:
        """Put the ticket in line; ValueError, saying why, when the queue is full or its visitor already has a job
        running or waiting."""
        with self._cond:
            mine = [t for t in self._running + self._waiting if ticket.visitor and t.visitor == ticket.visitor]
            if mine:
                state = "running" if mine[0] in self._running else "waiting"
                raise ValueError(f"you already have a job {state} on this server ({mine[0].label}); one job per "
                                 "visitor: stop it or let it finish, then start this one")
            if len(self._waiting) >= self.max_waiting:
                raise ValueError(f"this server's queue is full ({len(self._waiting)} jobs waiting for "
                                 f"{self.slots} job slot{'s' if self.slots > 1 else ''}); try again in a few minutes")
            self._waiting.append(ticket)

    def acquire(self, ticket: Ticket, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Wait for a slot (queueing the ticket first unless `queue` did); False (and out of the queue) as soon as
        cancelled() is True. cancelled is called every POLL_S seconds outside the lock (it may draw the wait, or
        raise: the ticket then leaves the queue)."""
        with self._cond:
            queued = ticket in self._waiting
        if not queued:
            self.queue(ticket)
        try:
            while True:
                with self._cond:
                    if self._waiting[0] is ticket and len(self._running) < self.slots:
                        self._waiting.pop(0)
                        ticket.started = time.monotonic()
                        self._running.append(ticket)
                        self._record("started", ticket)
                        return True
                    self._cond.wait(POLL_S)
                if cancelled():
                    return False
        finally:
            if ticket.started is None:
                self.release(ticket)

    def release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket in self._running:
                self._running.remove(ticket)
                self._record("finished", ticket)
            elif ticket in self._waiting:
                self._waiting.remove(ticket)
                self._record("left the queue", ticket)
            self._cond.notify_all()

    def _record(self, event: str, ticket: Ticket) -> None:
        """One JSON line in the job log (called with the lock held, so lines come in the order of events). A line
        that cannot be written is counted and logged, never raised: the slot it was about must not be lost."""
        if self.log:
            line = {"time": time.time(), "event": event, "job": ticket.id, "label": ticket.label,
                    "running": len(self._running), "waiting": len(self._waiting)}
            try:
                with open(self.log, "a") as f:
                    f.write(json.dumps(line) + "\n")
            except OSError as e:
                self.log_failures += 1
                logging.getLogger(__name__).warning("job log %s: %s", self.log, e)

    def place(self, ticket: Ticket) -> Place | None:
        """Where the ticket stands (None once released): the wait assumes each job runs its expected time."""
        with self._cond:
            now = time.monotonic()
            if ticket in self._running:
                return Place(0, 0.0, len(self._running), len(self._waiting), self.slots)
            if ticket not in self._waiting:
                return None
            free = sorted(max(0.0, t.expected - (now - t.started)) for t in self._running)
            free += [0.0] * (self.slots - len(free))
            for ahead in self._waiting[:self._waiting.index(ticket)]:
                free[0] += ahead.expected       # the earliest free slot takes the next job in line
                free.sort()
            return Place(self._waiting.index(ticket) + 1, free[0], len(self._running), len(self._waiting),
                         self.slots)

    def counts(self) -> tuple[int, int]:
        """(running, waiting) jobs on the server."""
        with self._cond:
            return len(self._running), len(self._waiting)


@contextmanager
def turn(label: str, expected: float, on_wait: Callable[[Place], None], visitor: str | None = None
         ) -> Iterator[None]:
    """Run the block in a slot of the server's scheduler, below the pages' priority, calling on_wait(place) while it
    waits (a script thread draws the wait there; Streamlit stops a script at its next drawing, which frees the
    ticket). ValueError when the queue refuses it. The calling thread stays nicer afterwards (a Streamlit script
    thread serves one run)."""
    s, ticket = scheduler(), Ticket(label, expected, visitor)

    def show() -> bool:
        place = s.place(ticket)
        if place is not None:
            on_wait(place)
        return False
    s.queue(ticket)
    lower_priority()
    try:
        s.acquire(ticket, show)
        yield
    finally:
        s.release(ticket)


_instance: Scheduler | None = None
_instance_lock = threading.Lock()


def scheduler() -> Scheduler:
    """The server's scheduler (one per process, created with default_slots() on first use)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            slots = default_slots()
            _instance = Scheduler(slots, os.environ.get("DIFFUSION_JOB_LOG") or None,
                                  _variable("DIFFUSION_MAX_WAITING", WAITING_PER_SLOT * slots))
        return _instance
