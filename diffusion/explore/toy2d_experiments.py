"""The computations behind the 2D page: schedule curves, noised clouds, sampling trajectories, learned vs exact
denoising fields, live metrics and sampler sweeps, returned as numpy arrays and pandas DataFrames.

Timesteps: arguments named t are code timesteps 0..T-1 (paper t+1); paper_t arguments and every frame's "t"
column are paper timesteps. Metrics follow one protocol cheap enough to run during training (evaluation.live_protocol):
METRIC_N samples against METRIC_N fresh true points, each number with its 95% interval, beside the floor (METRIC_N
other fresh true points, with the spread of repeated draws).
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from diffusion.core.forward import q_sample
from diffusion.core.oracles import GaussianMixture
from diffusion.core.schedules import NoiseSchedule
from diffusion.core.time import Clip
from diffusion.data import toy_for
from diffusion.data.toy_datasets import toy_dataset
from diffusion.metrics.evaluation import LIVE_2D_N as METRIC_N
from diffusion.metrics.evaluation import measure_samples, rows_frame
from diffusion.metrics.points2d import POINT_METRICS
from diffusion.metrics.protocol import points_protocol
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run, Trajectory

METRICS = tuple(m.name for m in POINT_METRICS.values() if not m.needs_mixture)   # every set has them
SWEEP_STEPS = (5, 10, 20, 50, 100, 250, 1000)
FAR_FROM_NORMAL = 1e-3          # alpha_bar_T above this: x_T keeps > 3% of x0's amplitude (Lin et al. 2024)
FIELD_EXTENT = 3.0              # the vector-field grid spans [-FIELD_EXTENT, FIELD_EXTENT]^2 (data std is 1)
MAX_FIELD_SIZE = 64             # arrows per side of the vector-field grid
FieldKind = Literal["direction", "score"]


def toy_points(dataset: str, n: int, seed: int) -> np.ndarray:
    """n points of a toy set, (n, 2) float32, a function of (dataset, n, seed) only."""
    return toy_dataset(dataset).sample(n, torch.Generator().manual_seed(seed)).numpy()


def schedule_frame(schedule: NoiseSchedule) -> pd.DataFrame:
    """beta_t, alpha_bar_t and log-SNR = log(alpha_bar / (1 - alpha_bar)) against paper t = 1..T."""
    log_snr = schedule.log_snr.double().numpy()
    return pd.DataFrame({"t": np.arange(1, schedule.T + 1), "beta": schedule.beta.numpy(),
                         "alpha_bar": schedule.alpha_bar.numpy(),
                         "log_snr": np.where(np.isfinite(log_snr), log_snr, np.nan)})


@dataclass(frozen=True)
class TerminalNoise:
    """How close x_T = sqrt(alpha_bar_T) x0 + sqrt(1 - alpha_bar_T) eps is to the N(0, I) sampling starts from."""

    alpha_bar_T: float
    snr_T: float

    @property
    def signal(self) -> float:
        """sqrt(alpha_bar_T): the amplitude of x0 left in x_T."""
        return math.sqrt(self.alpha_bar_T)

    @property
    def far_from_normal(self) -> bool:
        return self.alpha_bar_T > FAR_FROM_NORMAL


def terminal_noise(schedule: NoiseSchedule) -> TerminalNoise:
    """alpha_bar_T and SNR_T of a schedule."""
    return TerminalNoise(float(schedule.alpha_bar[-1]), float(schedule.snr[-1]))


def noised_points(x0: np.ndarray, schedule: NoiseSchedule, paper_t: int, seed: int) -> np.ndarray:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Ho et al. eq. 4), eps fixed by seed; (n, 2).

    paper_t = 0 returns x0; the same seed gives the same eps at every t, so the cloud moves smoothly with t.
    """
    if not (isinstance(paper_t, int) and 0 <= paper_t <= schedule.T):
        raise ValueError(f"paper_t={paper_t!r} is out of range; allowed: integers from 0 to T={schedule.T}")
    x = torch.tensor(np.asarray(x0), dtype=torch.float32)
    if paper_t == 0:
        return x.numpy().copy()
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return q_sample(x, schedule.alpha_bar[paper_t - 1], eps).numpy()


def forward_frame(x0: np.ndarray, schedule: NoiseSchedule, frames: int = 50, seed: int = 0) -> pd.DataFrame:
    """The forward process as animation frames: x_t of every point at `frames` + 1 paper timesteps evenly spaced
    from 0 (the data) to T, one eps per point for all t (so each point moves smoothly toward its own eps).
    Columns frame, t (paper), point, x, y."""
    if not (isinstance(frames, int) and 1 <= frames <= schedule.T):
        raise ValueError(f"frames={frames!r} is out of range; allowed: integers from 1 to T={schedule.T}")
    ts = np.unique(np.linspace(0, schedule.T, frames + 1).round().astype(int))
    clouds = np.stack([noised_points(x0, schedule, int(t), seed) for t in ts])              # (F, n, 2)
    n = clouds.shape[1]
    return pd.DataFrame({"frame": np.repeat(np.arange(len(ts)), n), "t": np.repeat(ts, n),
                         "point": np.tile(np.arange(n), len(ts)), "x": clouds[..., 0].ravel(),
                         "y": clouds[..., 1].ravel()})


def sampler_sweep(run: Run, name: str, eta: float = 0.0, steps: tuple[int, ...] = SWEEP_STEPS,
                  seed: int = 0) -> pd.DataFrame:
    """Metrics of METRIC_N samples (same seed, so the same x_T) against the number of steps (capped at T).

    One row per step count: steps, the evaluation.Result.row() of the measurement (protocol, n, each metric with
    its interval and floor), and "error" (why metrics are missing, e.g. NaN samples).
    """
    rows = []
    for n_steps in sorted({min(s, run.schedule.T) for s in steps}):
        protocol = points_protocol(METRIC_N, SamplerConfig(name, steps=n_steps, eta=eta), seed)
        samples = run.sample(METRIC_N, protocol.sampler, seed=seed)
        try:
            rows.append({"steps": n_steps, **measure_samples(samples, protocol, run.config.data).row(), "error": ""})
        except ValueError as e:
            rows.append({"steps": n_steps, "protocol": protocol.name, **{m: math.nan for m in METRICS},
                         "error": str(e)})
    return pd.DataFrame(rows)


def trajectory_frame(run: Run, sampler: SamplerConfig, n: int, seed: int = 0) -> pd.DataFrame:
    """The sampler's path for n points: columns frame (0..K), t (paper t of x_t; 0 for the output), point,
    x, y (x_t before step `frame`) and x0_x, x0_y (its x0_hat); frame K is the output, x0_hat = x_0 there."""
    traj = Trajectory()
    out = run.sample(n, sampler, seed=seed, trajectory=traj)
    x_t = torch.stack(traj.x_t + [out]).numpy()                      # (K + 1, n, 2)
    x0 = torch.stack(traj.x0_hat + [out]).numpy()
    ts = np.array(traj.paper_timesteps() + [0])
    frames = len(ts)
    return pd.DataFrame({"frame": np.repeat(np.arange(frames), n), "t": np.repeat(ts, n),
                         "point": np.tile(np.arange(n), frames), "x": x_t[..., 0].ravel(), "y": x_t[..., 1].ravel(),
                         "x0_x": x0[..., 0].ravel(), "x0_y": x0[..., 1].ravel()})


def trajectory_paths(frame: pd.DataFrame, n_points: int, max_frames: int = 200) -> pd.DataFrame:
    """The first n_points paths of a trajectory_frame, thinned to at most max_frames frames (the last kept)."""
    last = int(frame["frame"].max())
    keep = np.unique(np.append(np.linspace(0, last, min(max_frames, last + 1)).round().astype(int), last))
    return frame[(frame["point"] < n_points) & frame["frame"].isin(keep)].reset_index(drop=True)


def grid_points(size: int, extent: float = FIELD_EXTENT) -> np.ndarray:
    """A size x size grid over [-extent, extent]^2, (size^2, 2) float32."""
    ticks = np.linspace(-extent, extent, size, dtype=np.float32)
    gx, gy = np.meshgrid(ticks, ticks)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def exact_mixture(run: Run) -> GaussianMixture | None:
    """The run's data law when it is a Gaussian mixture (gaussian, 8gaussians, 25gaussians, custom sets), else None."""
    return toy_for(run.config.data).mixture


@torch.no_grad()
def _x0_hats(run: Run, x_t: Tensor, t: int) -> dict[str, Tensor]:
    """The learned x0_hat at code timestep t (no clipping) and, for mixture data, the exact E[x0 | x_t]."""
    t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long)
    out = {"learned": run.denoiser(SamplerConfig(clip=Clip.NONE))(x_t, t_batch, None)}
    mixture = exact_mixture(run)
    if mixture is not None:
        out["exact"] = mixture.denoiser(run.schedule.alpha_bar)(x_t, t_batch, None)
    return out


def denoising_fields(run: Run, t: int, size: int = 17, kind: FieldKind = "direction") -> pd.DataFrame:
    """On a size x size grid of x_t at code timestep t, the arrow x0_hat - x_t ("direction") or the score
    (sqrt(alpha_bar) x0_hat - x_t) / (1 - alpha_bar) (Tweedie), learned and (mixtures) exact.

    Columns field ("learned" | "exact"), x, y, u, v (the vector), magnitude (its length, for colour), x2, y2 (arrow
    ends: one common scale for both fields, the 95th-percentile length drawn as 0.9 grid cells, clipped at 1.5 cells).
    """
    if kind not in ("direction", "score"):
        raise ValueError(f"unknown field kind {kind!r}; allowed: direction, score")
    if not (isinstance(size, int) and 3 <= size <= MAX_FIELD_SIZE):
        raise ValueError(f"field grid size={size!r} is out of range; allowed: integers from 3 to {MAX_FIELD_SIZE}")
    x_t = torch.from_numpy(grid_points(size))
    ab = run.schedule.alpha_bar[t]
    frames = []
    for field, x0_hat in _x0_hats(run, x_t, t).items():
        vec = x0_hat - x_t if kind == "direction" else (ab.sqrt() * x0_hat - x_t) / (1 - ab)
        frames.append(pd.DataFrame({"field": field, "x": x_t[:, 0].numpy(), "y": x_t[:, 1].numpy(),
                                    "u": vec[:, 0].numpy(), "v": vec[:, 1].numpy()}))
    df = pd.concat(frames, ignore_index=True)
    cell = 2 * FIELD_EXTENT / (size - 1)
    length = np.hypot(df["u"], df["v"])
    df["magnitude"] = length
    scale = 0.9 * cell / max(float(np.nanpercentile(length, 95)), 1e-12)
    shrink = np.minimum(1.0, 1.5 * cell / np.maximum(scale * length, 1e-12))
    df["x2"] = df["x"] + scale * shrink * df["u"]
    df["y2"] = df["y"] + scale * shrink * df["v"]
    return df


def loss_frame(steps: list[int] | np.ndarray, loss: list[float] | np.ndarray, max_points: int = 400
               ) -> pd.DataFrame:
    """The training loss averaged over bins of consecutive steps (at most max_points bins); columns step, loss.

    Each bin is plotted at its last step, so the curve ends at the current step."""
    steps, loss = np.asarray(steps, dtype=np.int64), np.asarray(loss, dtype=np.float64)
    if len(steps) == 0:
        return pd.DataFrame({"step": np.array([], dtype=np.int64), "loss": np.array([], dtype=np.float64)})
    width = math.ceil(len(steps) / max_points)
    edges = np.arange(0, len(steps), width)
    sums = np.add.reduceat(loss, edges)
    counts = np.diff(np.append(edges, len(steps)))
    return pd.DataFrame({"step": steps[np.minimum(edges + width, len(steps)) - 1], "loss": sums / counts})


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    """Long form of measured metrics for charts (evaluation.rows_frame): columns step, metric, value, low, high,
    floor, floor_low, floor_high, one row per step and metric."""
    return rows_frame(rows, METRICS)
