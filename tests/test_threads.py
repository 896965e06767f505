"""A Python thread's torch thread count holds even when another thread sets another count before the first one's
first parallel operation (PyTorch's lazy per-thread initialisation would otherwise override it: a training job
that set 2 threads trained on 1 because a page had set 1 meanwhile)."""

import threading

import torch

from diffusion.training.threads import set_threads, torch_threads


def _count_after_another_thread_sets(n: int, other: int, use) -> int:
    """The torch threads a new thread runs on after use(n), when another thread sets `other` before its first
    parallel operation."""
    ready, go, out = threading.Event(), threading.Event(), []

    def work() -> None:
        use(n)
        ready.set()
        go.wait()
        x = torch.ones(64, 64)
        x @ x                                    # its first parallel operation
        out.append(torch.get_num_threads())
    before = torch.get_num_threads()
    thread = threading.Thread(target=work)
    thread.start()
    ready.wait()
    torch.set_num_threads(other)
    go.set()
    thread.join()
    torch.set_num_threads(before)
    return out[0]


def test_a_threads_count_survives_another_threads_setting():
    assert _count_after_another_thread_sets(2, 1, set_threads) == 2
    assert _count_after_another_thread_sets(1, 2, set_threads) == 1


def test_the_block_runs_on_its_count_and_the_count_is_restored():
    start = torch.get_num_threads()
    with torch_threads(start + 1):
        assert torch.get_num_threads() == start + 1
    assert torch.get_num_threads() == start
