"""Data-parallel training under torchrun: one process per GPU (or CPU process), gradients averaged by
DistributedDataParallel. Every helper is a no-op in a single process, so the trainer calls them unconditionally.
"""

import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

SEED_BOUND = 2**62  # per-rank seeds are drawn in [0, SEED_BOUND)


def setup() -> str:
    """Under torchrun (WORLD_SIZE set), join the process group: nccl on GPUs, else gloo. Returns this rank's
    device: cuda:LOCAL_RANK, or "cpu"; a plain single-process run gets "cuda" when there is a GPU."""
    if "WORLD_SIZE" not in os.environ:
        return default_device()
    if not torch.cuda.is_available():
        dist.init_process_group("gloo")
        return "cpu"
    local_rank, gpus = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
    if local_rank >= gpus:
        raise ValueError(f"LOCAL_RANK={local_rank} but this machine has {gpus} GPUs; allowed: --nproc_per_node "
                         f"up to {gpus}")
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))  # bound: barriers use this GPU
    return f"cuda:{local_rank}"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def teardown() -> None:
    """Leave the process group (no-op outside torchrun)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    """The number of ranks (1 outside torchrun)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, the one process that writes checkpoints and prints."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here."""
    if dist.is_initialized():
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (a dataset download or cache written once)."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def wrap(model: nn.Module) -> nn.Module:
    """DistributedDataParallel around model under torchrun (its backward averages the gradients over ranks);
    the model itself otherwise. Forward and backward go through the wrapper; state stays in model."""
    if not dist.is_initialized():
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def rank_generator(shared: torch.Generator) -> torch.Generator:
    """This rank's generator for one step, seeded by a draw from `shared` (equal on every rank, so one saved
    state resumes every rank exactly); `shared` itself outside torchrun."""
    if world_size() == 1:
        return shared
    seeds = torch.randint(SEED_BOUND, (world_size(),), generator=shared, device=shared.device)
    return torch.Generator(shared.device).manual_seed(int(seeds[rank()]))


def mean(value: Tensor) -> float:
    """A scalar averaged over the ranks: with equal per-rank batches, the loss of the whole global batch."""
    if world_size() == 1:
        return float(value)
    total = value.detach().reshape(1).clone()
    dist.all_reduce(total)  # SUM: gloo has no AVG
    return float(total) / world_size()


def rank0_decides(flag: bool) -> bool:
    """Rank 0's flag on every rank: a stop that must happen at the same step everywhere (e.g. a time budget)."""
    if world_size() == 1:
        return flag
    on_gpu = dist.get_backend() == "nccl"  # nccl moves only GPU tensors
    decision = torch.tensor([float(flag)], device=f"cuda:{torch.cuda.current_device()}" if on_gpu else "cpu")
    dist.broadcast(decision, src=0)
    return bool(decision.item())
