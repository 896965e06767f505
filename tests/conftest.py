import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

# One intra-op thread: the tests' tensors are small, and on a 2-core machine OpenMP synchronisation costs
# more than it gains (and much more when another process holds a core).
torch.set_num_threads(1)


N, N_REF = 1000, 2000  # sampler tests: samples drawn, and true reference points


@pytest.fixture(scope="session")
def floor_8gaussians():
    """W1 between independent true samples of size N and a reference of N_REF points: mean and std over 6
    draws. A sampler driven by the exact denoiser must land within a few of these standard deviations."""
    from diffusion.data.toy2d import toy_dataset
    from diffusion.metrics2d import wasserstein
    toy = toy_dataset("8gaussians")
    ref = toy.sample(N_REF, torch.Generator().manual_seed(999))
    w = [wasserstein(toy.sample(N, torch.Generator().manual_seed(s)), ref) for s in range(6)]
    return ref, statistics.mean(w), statistics.stdev(w)
