"""The server-wide limit on long work: at most `slots` jobs (trainings, sweeps) run at once, in every session
together; the others wait in one first-come queue and can say where they stand ("you are 2nd; about 40 s"). One
Scheduler per server process (`scheduler()`); its size comes from the machine (half the CPU cores, plus two per GPU)
unless $DIFFUSION_MAX_JOBS sets it. With $DIFFUSION_JOB_LOG set, every job's start and end is appended to that file
as a JSON line (time, event, job, running and waiting counts): the operator's record, and the load test's.
"""

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

POLL_S = 0.2             # how often a waiting job checks whether it was cancelled


def default_slots() -> int:
    """$DIFFUSION_MAX_JOBS, else half the CPU cores (at least one) plus two per GPU."""
    value = os.environ.get("DIFFUSION_MAX_JOBS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    import torch
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return max(1, (os.cpu_count() or 1) // 2) + 2 * gpus


@dataclass
class Ticket:
    """One job's place: what it is, how long it is expected to take, and when it got a slot."""

    label: str
    expected: float                       # seconds, the job's estimate of its own duration
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
    """A counting semaphore with a visible FIFO queue (thread-safe)."""

    def __init__(self, slots: int, log: str | None = None):
        if slots < 1:
            raise ValueError(f"slots={slots} must be at least 1")
        self.slots, self.log = slots, log
        self._cond = threading.Condition()
        self._running: list[Ticket] = []
        self._waiting: list[Ticket] = []

    def acquire(self, ticket: Ticket, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Queue the ticket and wait for a slot; False (and out of the queue) as soon as cancelled() is True.
        cancelled is called every POLL_S seconds outside the lock (it may draw the wait, or raise: the ticket
        then leaves the queue)."""
        with self._cond:
            self._waiting.append(ticket)
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
        """One JSON line in the job log (called with the lock held, so lines come in the order of events)."""
        if self.log:
            line = {"time": time.time(), "event": event, "job": ticket.id, "label": ticket.label,
                    "running": len(self._running), "waiting": len(self._waiting)}
            with open(self.log, "a") as f:
                f.write(json.dumps(line) + "\n")

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
def turn(label: str, expected: float, on_wait: Callable[[Place], None]) -> Iterator[None]:
    """Run the block in a slot of the server's scheduler, calling on_wait(place) while it waits (a script thread
    draws the wait there; Streamlit stops a script at its next drawing, which frees the ticket)."""
    s, ticket = scheduler(), Ticket(label, expected)

    def show() -> bool:
        place = s.place(ticket)
        if place is not None:
            on_wait(place)
        return False
    s.acquire(ticket, show)
    try:
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
            _instance = Scheduler(default_slots(), os.environ.get("DIFFUSION_JOB_LOG") or None)
        return _instance
