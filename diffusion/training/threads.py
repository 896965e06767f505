"""PyTorch's CPU threads for the calling Python thread. PyTorch (OpenMP build) gives a thread, at its first parallel
operation, the count that any thread set last, overriding what the thread set itself before that operation: a
training job that set 2 threads trained on 1 because a page had set 1 meanwhile (1.5x its promise). So the count
is settled first, then set."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def set_threads(n: int) -> None:
    """Run this Python thread's torch work on n threads from now on."""
    torch.get_num_threads()     # settles this thread's count (PyTorch's lazy per-thread initialisation)...
    torch.set_num_threads(n)    # ...so that this one is not overridden at the first parallel operation


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block (or decorated function) on n torch threads, this Python thread only; the count is restored."""
    before = torch.get_num_threads()
    set_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
