"""The training loop: AdamW, gradient clipping, warmup and decay, EMA of weights, budgets in steps or seconds,
callbacks that observe each step and may stop it, divergence detection, checkpoints and exact resumption."""

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import Tensor

from diffusion.config import RunConfig
from diffusion.core.edm import EDMPrecond, edm_loss
from diffusion.core.losses import diffusion_loss, drop_labels, flow_loss
from diffusion.models import build_model, memory_format
from diffusion.sampling.run import Run
from diffusion.training import checkpoints, distributed, guard, runlock

PROBE_SEED = 20_240_601   # the probe batch of guard.health: fixed, and drawn with its own generator
StopReason = Literal["steps", "time", "callback", "diverged"]


def _adamw_kernel(device: str) -> dict:
    """AdamW's implementation: fused (one kernel for all parameters) on CPU and CUDA, where PyTorch has it; on CPU it
    made the 2D MLP's step 12% faster than the default per-parameter loop (benchmarks/bench_2d.py); foreach elsewhere."""
    return {"fused": True} if torch.device(device).type in ("cpu", "cuda") else {"foreach": True}


def _clip_gradients(params: list[Tensor], max_norm: float) -> float:
    """The gradients' total norm, scaling them to max_norm when above it: clip_grad_norm_ without its multiply by
    1 on the steps that need no clipping (3% of the 2D MLP's step)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, foreach=True)
    if float(norm) > max_norm:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm, foreach=True)
    return float(norm)


@dataclass
class StepInfo:
    step: int        # steps done so far, this one included
    loss: float
    lr: float
    elapsed: float   # seconds of training over the whole run, resumptions included


@dataclass
class RunResult:
    reason: StopReason
    steps: int                      # steps done in this call
    message: str = ""


Callback = Callable[["Trainer", StepInfo], bool | None]  # return True to request a stop


def _placed(x: Tensor, device: str, layout: torch.memory_format) -> Tensor:
    """x on the device, images (4D) in the network's memory layout."""
    x = x.to(device)
    return x.contiguous(memory_format=layout) if x.dim() == 4 else x


@dataclass
class Trainer:
    """All a run's state: config, network, EMA copy, optimizer, RNG, step counter, history (one row a step).

    Under torchrun (a process group initialised, see distributed.setup) each rank draws batch_size / world_size
    examples a step, DistributedDataParallel averages the gradients and only rank 0 writes checkpoints.
    """

    config: RunConfig
    x: Tensor                          # (N, ...) training data on the device
    y: Tensor | None = None            # (N,) labels for conditional models
    noise: Tensor | None = None        # (N, ...) flow objective only: the noise coupled with each x (reflow)
    device: str = "cpu"
    data_source: str = ""
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):
        tc, world = self.config.train, distributed.world_size()
        if tc.batch_size % world:
            raise ValueError(f"batch_size={tc.batch_size} cannot be split over {world} processes; allowed: a multiple "
                             f"of {world}")
        self.schedule = self.config.schedule.build()
        with torch.random.fork_rng(devices=[]):   # seeded weights without touching the caller's global RNG
            torch.manual_seed(tc.seed)
            layout = memory_format(self.config.model, self.device, tc.channels_last)
            self.model = build_model(self.config.model).to(self.device, memory_format=layout)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self._params, self._ema_params = list(self.model.parameters()), list(self.ema.parameters())
        self._buffers = list(zip(self.ema.buffers(), self.model.buffers()))
        self._net = distributed.wrap(self.model)  # forward and backward only: the state lives in self.model
        self._precond = EDMPrecond(self._net, tc.sigma_data)  # used by the edm objective only
        self.optimizer = torch.optim.AdamW(self._params, lr=tc.lr, weight_decay=tc.weight_decay,
                                           **_adamw_kernel(self.device))
        self.generator = torch.Generator(self.device).manual_seed(tc.seed)
        if self.noise is not None and (tc.objective != "flow" or self.noise.shape != self.x.shape):
            raise ValueError(f"coupled noise {tuple(self.noise.shape)} needs the flow objective and the data's shape "
                             f"{tuple(self.x.shape)}; got objective {tc.objective!r}")
        self.x = _placed(self.x, self.device, layout)
        self.noise = None if self.noise is None else _placed(self.noise, self.device, layout)
        self.y = None if self.y is None else self.y.to(self.device)
        self.step, self.elapsed, self.loss_avg = 0, 0.0, math.nan   # loss_avg: guard's loss level
        self.saved_step: int | None = None     # the step of the last checkpoint this trainer wrote or resumed from

    @property
    def conditional(self) -> bool:
        return getattr(self.config.model, "num_classes", 0) > 0

    def lr_at(self, step: int) -> float:
        """Linear warmup, then constant or cosine decay to 10% of lr at config.train.steps."""
        tc = self.config.train
        if step < tc.warmup_steps:
            return tc.lr * (step + 1) / tc.warmup_steps
        if tc.decay == "cosine":
            progress = min(1.0, (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps))
            return tc.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))
        return tc.lr

    def _batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(x0, labels after dropout or None, coupled noise or None) of one step."""
        size = self.config.train.batch_size // distributed.world_size()
        idx = torch.randint(0, self.x.shape[0], (size,), generator=generator, device=self.device)
        noise = None if self.noise is None else self.noise[idx]
        if not self.conditional:
            return self.x[idx], None, noise
        y = drop_labels(self.y[idx], self.config.train.label_dropout, self.model.null_label, generator)
        return self.x[idx], y, noise

    def _loss(self, net: torch.nn.Module, x0: Tensor, y: Tensor | None, noise: Tensor | None,
              generator: torch.Generator) -> Tensor:
        """The batch's mean loss of the configured objective through net (the DDP wrapper while training, the bare
        network to probe); noise: reflow's coupled noise (flow objective) or None."""
        tc = self.config.train
        with torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=tc.precision == "bfloat16"):
            if tc.objective == "edm":
                precond = self._precond if net is self._net else EDMPrecond(net, tc.sigma_data)
                return edm_loss(precond, x0, y, generator, P_mean=tc.P_mean, P_std=tc.P_std).mean()
            if tc.objective == "flow":
                return flow_loss(net, x0, y, generator, time_sampling=tc.time_sampling, logit_mean=tc.logit_mean,
                                 logit_std=tc.logit_std, eps=noise).mean()
            return diffusion_loss(net, self.schedule, x0, y, generator, objective=tc.objective,
                                  weighting=tc.weighting, min_snr_gamma=tc.min_snr_gamma).mean()

    @torch.no_grad()
    def probe_loss(self, examples: int) -> float:
        """The network's mean loss over batches of a fixed probe (at least `examples` examples), drawn with its own
        generator: the run's RNG is untouched, so checking a run never changes it."""
        generator = torch.Generator(self.device).manual_seed(PROBE_SEED)
        losses = []
        while len(losses) * (self.config.train.batch_size // distributed.world_size()) < examples:
            losses.append(float(self._loss(self.model, *self._batch(generator), generator)))
        return sum(losses) / len(losses)

    def health(self) -> str:
        """Why the current weights must not be saved ("" when they may): training.guard.health."""
        return guard.health(self)

    def train_step(self) -> tuple[float, str]:
        """One gradient step; returns (loss, "") or (loss, why it diverged) without applying a bad update."""
        tc = self.config.train
        generator = distributed.rank_generator(self.generator)
        loss = self._loss(self._net, *self._batch(generator), generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = _clip_gradients(self._params, tc.grad_clip if tc.grad_clip > 0 else math.inf)
        value = distributed.mean(loss.detach())  # the same on every rank, so all ranks stop together
        why = guard.step_verdict(self.step, value, grad_norm, self.loss_avg)
        if why:
            return value, why
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        self.loss_avg = guard.next_level(self.loss_avg, value)
        return value, ""

    @torch.no_grad()
    def _update_ema(self) -> None:
        """EMA of weights with warmup: decay min(ema_decay, (1 + n) / (10 + n)) after n steps."""
        decay = min(self.config.train.ema_decay, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(self._ema_params, self._params, 1.0 - decay)
        for b_ema, b in self._buffers:
            b_ema.copy_(b)

    def log(self, **metrics: float) -> None:
        """Attach metrics (e.g. W1 measured now) to the current step's history row."""
        if not self.history or self.history[-1]["step"] != self.step:
            self.history.append({"step": self.step, "time": self.elapsed})
        self.history[-1].update(metrics)

    def run(self, steps: int | None = None, seconds: float | None = None, callback: Callback | None = None,
            run_dir: str | Path | None = None) -> RunResult:
        """Train until `steps` more steps (default: up to config.train.steps), `seconds`, or a callback stops it.
        With run_dir, a checkpoint is written every config.train.checkpoint_every steps and at the end, while the
        folder's lock is held (runlock.RunFolderBusy at once if another process writes there); a checkpoint whose
        weights fail health() is not written, and the run stops as diverged. Under torchrun, rank 0's clock and
        callback decide when every rank stops, and rank 0 alone holds the lock."""
        owner = run_dir is not None and distributed.is_main()
        with runlock.hold(run_dir, wait=0.0) if owner else nullcontext():
            return self._run(steps, seconds, callback, run_dir)

    def _run(self, steps: int | None, seconds: float | None, callback: Callback | None,
             run_dir: str | Path | None) -> RunResult:
        target = self.step + steps if steps is not None else self.config.train.steps
        start, done, result = time.perf_counter(), 0, None
        base_elapsed = self.elapsed
        self.model.train()
        while result is None:
            if self.step >= target:
                result = RunResult("steps", done)
                break
            if seconds is not None and distributed.rank0_decides(time.perf_counter() - start >= seconds):
                result = RunResult("time", done)
                break
            loss, why = self.train_step()
            if why:
                result = RunResult("diverged", done, why)
                break
            done += 1
            self.elapsed = base_elapsed + time.perf_counter() - start
            info = StepInfo(self.step, loss, self.lr_at(self.step - 1), self.elapsed)
            self.log(loss=loss, lr=info.lr)
            if callback is not None and distributed.rank0_decides(bool(callback(self, info))):
                result = RunResult("callback", done)
            if run_dir is not None and self.step % self.config.train.checkpoint_every == 0:
                why = self.health()
                if why:
                    result = RunResult("diverged", done, f"at step {self.step}, {why}")
                    break
                self.save(run_dir)
        return self._finish_run(result, run_dir)

    def _finish_run(self, result: RunResult, run_dir: str | Path | None) -> RunResult:
        """The last checkpoint, written only when the weights pass health(); a diverged result says what is kept."""
        why = self.health() if run_dir is not None or result.reason == "diverged" else ""
        if run_dir is not None:
            if not why:
                self.save(run_dir)
            distributed.barrier()  # no rank returns before the last checkpoint is on disk
        if result.reason != "diverged":
            return result
        if not why:
            kept = f"the weights of step {self.step} pass the check (finite, probe loss in bound) and are kept"
        elif run_dir is not None and self.saved_step is not None:
            kept = f"the weights of step {self.step} fail the check ({why}); {str(run_dir)!r} keeps step " \
                   f"{self.saved_step}, its last good checkpoint"
        else:
            kept = f"the weights of step {self.step} fail the check ({why}); no good checkpoint was written"
        return RunResult("diverged", result.steps, f"training stopped: {result.message}; {kept} (try a lower "
                         "learning rate or stronger gradient clipping)")

    def save(self, run_dir: str | Path) -> None:
        """Write a checkpoint (under torchrun, rank 0 only: the ranks' weights are equal); ValueError, and nothing
        written, when the weights fail health()."""
        why = self.health()
        if why:
            raise ValueError(f"checkpoint not written: {why}; {str(run_dir)!r} keeps its last good checkpoint")
        if distributed.is_main():
            checkpoints.save(run_dir, self)
        self.saved_step = self.step

    def as_run(self) -> Run:
        """A frozen copy for sampling (the EMA weights), safe to use while this trainer goes on."""
        return Run(self.config, self.schedule, copy.deepcopy(self.ema), self.step, list(self.history),
                   self.data_source)

    @classmethod
    def resume(cls, run_dir: str | Path, x: Tensor, y: Tensor | None = None, device: str = "cpu") -> "Trainer":
        """Continue a run from its last checkpoint: weights, EMA, optimizer, RNG and history."""
        return checkpoints.load_trainer(cls, run_dir, x, y, device)
