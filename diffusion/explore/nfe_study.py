"""The quality-versus-steps study: for one run and one bank of initial noises (one seed), sweep samplers x numbers
of network evaluations (NFE) and measure each cell: quality, wall time, and numerical stability, at float32 or with
the network in bfloat16 / float16. Results are a DataFrame, one row per (precision, sampler, settings, steps).
"""

import copy
import math
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, Literal, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from diffusion.metrics.evaluation import measure_samples
from diffusion.metrics.points2d import POINT_METRICS
from diffusion.metrics.protocol import Protocol, image_protocol, points_protocol, reference_for, stratify
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.registry import SAMPLERS, sampler_spec, steps_for_nfe
from diffusion.sampling.registry import nfe as nfe_of
from diffusion.sampling.run import Run
from diffusion.training.checkpoints import load_run

Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NFE_TARGETS: tuple[int, ...] = (5, 10, 20, 50, 100, 250, 1000)
ALIASES = {"churn": "S_churn", "s_min": "S_min", "s_max": "S_max", "s_noise": "S_noise"}
Progress = Callable[[int, int, dict], bool | None]   # (rows done, rows planned, the last row) -> True: stop here


def parse_sampler(text: str) -> SamplerConfig:
    """'name' or 'name:field=value:...' (SamplerConfig fields; churn, s_min, s_max, s_noise for S_*), e.g.
    'ddim:eta=0.5' or 'heun:grid=karras:rho=5:churn=40'; the steps are set by the study."""
    name, *options = text.strip().split(":")
    kinds = {f.name: f.type for f in fields(SamplerConfig)}
    values: dict = {}
    for option in options:
        key, _, raw = option.partition("=")
        key = ALIASES.get(key, key)
        if key not in kinds or key in ("name", "steps") or not raw:
            raise ValueError(f"sampler setting {option!r} in {text!r} is invalid; allowed: field=value with field "
                             f"one of {', '.join(k for k in kinds if k not in ('name', 'steps'))}")
        kind = str(kinds[key])
        try:
            values[key] = raw if "str" in kind else (raw == "true" if "bool" in kind else float(raw))
        except ValueError:
            raise ValueError(f"sampler setting {option!r} in {text!r}: {raw!r} is not a number") from None
    return SamplerConfig(name, **values)


def settings(config: SamplerConfig) -> str:
    """The settings that tell this sampler apart: its key ones (eta, variance, grid...) and any non-default one;
    rho only on the karras grid, the one it shapes."""
    default, key = SamplerConfig(config.name), sampler_spec(config.name).shown
    shown = {"grid": config.sigma_grid}
    names = [f.name for f in fields(config) if f.name not in ("name", "steps") and (
        f.name in key or getattr(config, f.name) != getattr(default, f.name))
        and (f.name != "rho" or config.sigma_grid == "karras")]
    return ", ".join(f"{k}={shown.get(k, getattr(config, k))}" for k in names)


def plan(run: Run, samplers: Sequence[str | SamplerConfig], nfe_targets: Sequence[int],
         reference: bool = True) -> list[SamplerConfig]:
    """The sampler configurations to run: each template at the most steps fitting each NFE target (ddpm/ddim
    capped at T), without duplicates; plus DDPM over all T steps, the reference, when asked."""
    if not samplers or not nfe_targets:
        raise ValueError(f"the study needs samplers and NFE targets; got {list(samplers)} and {list(nfe_targets)}")
    bad = [t for t in nfe_targets if not (isinstance(t, int) and t >= 1)]
    if bad:
        raise ValueError(f"NFE targets {bad} are invalid; allowed: integers >= 1")
    templates = [parse_sampler(s) if isinstance(s, str) else s for s in samplers]
    configs: list[SamplerConfig] = []
    for template in templates:
        for target in sorted(set(nfe_targets)):
            steps = steps_for_nfe(template.name, target)
            steps = min(steps, run.schedule.T) if template.space == "timesteps" else steps
            configs.append(replace(template, steps=steps))
    if reference:
        configs.append(SamplerConfig("ddpm", steps=run.schedule.T))
    return list(dict.fromkeys(configs))


class LowPrecisionNet(nn.Module):
    """The network with its weights cast to dtype, run under torch.autocast(dtype): x is cast in, matmuls and
    convolutions run in dtype (autocast keeps its float32 ops, e.g. norms, in float32), the output comes back
    as float32, so the sampler's own arithmetic stays float32."""

    def __init__(self, net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net, self.dtype = copy.deepcopy(net).to(dtype), dtype
        self.device_type = next(net.parameters()).device.type

    @property
    def null_label(self) -> int | None:
        return getattr(self.net, "null_label", None)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.net(x.to(self.dtype), t, y).float()


def with_precision(run: Run, precision: Precision, device: str | torch.device = "cpu") -> Run:
    """A copy of run on device whose network runs in precision (float32: the network as it is)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    net = run.net if next(run.net.parameters()).device == torch.device(device) else copy.deepcopy(run.net).to(device)
    if precision != "float32":
        net = LowPrecisionNet(net, PRECISIONS[precision])
    return replace(run, net=net.eval())


class Extremes:
    """A per-step callback keeping the largest |x_t| and |x0_hat| seen (NaN counts as inf), on x's device; as a
    Run's observe_x0 it also sees each 2D x0_hat before its projection onto the data's ball, so max |x0_hat| is the
    raw network's and `projected` counts the x0_hat evaluations the projection moved."""

    def __init__(self):
        self.x: Tensor | None = None
        self.x0: Tensor | None = None
        self.projected, self.evaluations = 0, 0

    def __call__(self, i: int, t: float, x_t: Tensor, x0_hat: Tensor) -> None:
        self.x, self.x0 = _running_max(self.x, x_t), _running_max(self.x0, x0_hat)

    def observe(self, x0_raw: Tensor, moved: Tensor) -> None:
        self.x0 = _running_max(self.x0, x0_raw)
        self.projected += int(moved.sum())
        self.evaluations += int(moved.numel())

    def values(self, output: Tensor) -> tuple[float, float]:
        """(max |x| over the trajectory and the output, max |x0_hat|)."""
        return float(_running_max(self.x, output.to(self.x.device))), float(self.x0)


def _running_max(best: Tensor | None, x: Tensor) -> Tensor:
    m = x.detach().abs().nan_to_num(nan=math.inf).amax()
    return m if best is None else torch.maximum(best, m)


Judge = Callable[[Tensor], dict[str, float]]


def study_protocol(run: Run, n: int, seed: int) -> Protocol:
    """The study's protocol (its sampler is each row's): W1 and KL both ways in 2D, FID (and label accuracy) on
    images, against n real points or images, the floor at the same n (diffusion.metrics.protocol)."""
    if run.is_image:
        return image_protocol(run.config.data, n, seed=seed)
    return points_protocol(n, seed=seed)


def quality_metrics(run: Run) -> tuple[str, ...]:
    """The quality columns a study of this run has: in 2D the metrics registered with study=True (W1 and KL both
    ways: diffusion.metrics.points2d.POINT_METRICS); FID (+ label accuracy) on images."""
    if run.is_image:
        return ("fid", "accuracy") if run.num_classes else ("fid",)
    return tuple(m.name for m in POINT_METRICS.values() if m.study and not m.needs_mixture)


def _judge(run: Run, protocol: Protocol, y: Tensor | None) -> tuple[Judge, dict[str, float]]:
    """(samples -> each quality metric with its interval bounds (m, m_low, m_high), the floor columns)."""
    names = quality_metrics(run)
    floor = reference_for(protocol, run.config.data).floor
    floor_columns = {f"{m}_floor{s}": getattr(floor[m], a) for m in names if m in floor
                     for s, a in (("", "value"), ("_low", "low"), ("_high", "high"))}

    def judge(x: Tensor) -> dict[str, float]:
        row = measure_samples(x, protocol, run.config.data, y=y).row()
        return {f"{m}{s}": row[f"{m}{s}"] for m in names for s in ("", "_low", "_high")}
    return judge, floor_columns


def _measure(run: Run, config: SamplerConfig, n: int, seed: int, y: Tensor | None, judge: Judge,
             metrics: Sequence[str]) -> dict:
    """One cell of the study: sample with a stability callback, time it, judge the samples if all are finite."""
    extremes = Extremes()
    observed = run if run.is_image else replace(run, observe_x0=extremes.observe)
    start = time.perf_counter()
    samples = observed.sample(n, config, seed=seed, y=y, callback=extremes)   # .cpu(): the clock waits for the device
    seconds = time.perf_counter() - start
    nonfinite = int((~torch.isfinite(samples).reshape(n, -1).all(dim=1)).sum())
    quality = {f"{m}{s}": math.nan for m in metrics for s in ("", "_low", "_high")}
    error = f"{nonfinite} of {n} samples are not finite" if nonfinite else ""
    if not nonfinite:
        try:
            quality = judge(samples)
        except ValueError as e:
            error = str(e)
    max_x, max_x0 = extremes.values(samples)
    return {"sampler": config.name, "settings": settings(config), "nfe": nfe_of(config.name, config.steps),
            "steps": config.steps, "seconds": seconds, **quality, "nonfinite": nonfinite, "max_abs_x": max_x,
            "max_abs_x0": max_x0, "x0_projected": extremes.projected / max(1, extremes.evaluations), "error": error}


def study(run: Run, samplers: Sequence[str | SamplerConfig] = SAMPLERS, nfe_targets: Sequence[int] = NFE_TARGETS,
          *, n: int = 500, seed: int = 0, precisions: Sequence[Precision] = ("float32",),
          device: str | torch.device = "cpu", reference: bool = True, progress: Progress | None = None
          ) -> pd.DataFrame:
    """Every configuration of plan(run, samplers, nfe_targets, reference) at every precision, from the same n
    initial noises (sample i of seed s: seed s * 10^6 + i) and, for conditional runs, the same balanced labels.
    bfloat16 / float16 run only the network in that type (LowPrecisionNet); the sampler's arithmetic stays float32.

    Columns: precision, sampler, settings, nfe (network evaluations actually used), steps, seconds (sampling wall
    time), the quality_metrics(run) with their interval bounds (m_low, m_high) and floors (m_floor, m_floor_low,
    m_floor_high), nonfinite (samples with NaN/inf; quality is NaN then),
    max_abs_x / max_abs_x0 (largest |x_t| and |x0_hat| along the trajectories; x_t in the sampler's space: VP for
    ddpm/ddim, VE x_t / sqrt(alpha_bar) for euler/heun/dpmpp2m, flow x_t for flow_euler/flow_midpoint; 2D x0_hat
    before its projection onto the data's ball), x0_projected (2D: the share of x0_hat evaluations that projection
    moved; 0 for images), error, protocol (study_protocol with the row's sampler), n (capped when the data hold fewer
    held-out images; cap says so). progress(done, planned, row) after every row may return True to stop the sweep
    there (a job budget): the rows done so far are returned."""
    if not (isinstance(n, int) and n >= 2):
        raise ValueError(f"number of samples n={n!r} is out of range; allowed: integers >= 2")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise ValueError(f"unknown precisions {unknown or list(precisions)}; allowed: {', '.join(PRECISIONS)}")
    configs = plan(run, samplers, nfe_targets, reference)
    protocol = study_protocol(run, n, seed)
    real = reference_for(protocol, run.config.data)
    n, cap = real.n, real.cap                       # image data may hold fewer than n held-out images
    y = run.balanced_labels(n)
    protocol = stratify(protocol, y)                # the floor drawn with the samples' labels
    judge, floor = _judge(run, protocol, y)
    rows: list[dict] = []
    for precision in precisions:
        prepared = with_precision(run, precision, device)
        prepared.sample(2, replace(configs[0], steps=1), seed=seed, y=None if y is None else y[:2])  # warm-up
        for config in configs:
            row = {"precision": precision, **_measure(prepared, config, n, seed, y, judge, quality_metrics(run)),
                   **floor, "protocol": replace(protocol, sampler=config).name, "n": n, "cap": cap}
            rows.append(row)
            if progress is not None and progress(len(rows), len(configs) * len(precisions), row):
                return pd.DataFrame(rows)
    return pd.DataFrame(rows)


GOAL_NFE, GOAL_RATIO = 20, 1.10   # the goal: the best sampler at 20 NFE within 10% of DDPM-1000


@dataclass(frozen=True)
class Best:
    """The best configuration within an NFE budget, against the reference: DDPM at the largest NFE swept."""

    metric: str
    budget: int
    sampler: str
    settings: str
    nfe: int
    value: float
    reference_nfe: int
    reference_value: float

    @property
    def ratio(self) -> float:
        return self.value / self.reference_value if self.reference_value > 0 else math.inf

    @property
    def met(self) -> bool:
        return self.ratio <= GOAL_RATIO

    def line(self) -> str:
        return (f"best at <= {self.budget} NFE: {self.sampler} ({self.settings}), {self.nfe} NFE, {self.metric} "
                f"{self.value:.4g} vs DDPM with {self.reference_nfe} NFE {self.reference_value:.4g}: ratio "
                f"{self.ratio:.3f} (goal <= {GOAL_RATIO:.2f}: {'met' if self.met else 'not met'})")


def quality_metric(frame: pd.DataFrame) -> str:
    """The headline metric of a study frame: FID for images, W1 in 2D."""
    return "fid" if "fid" in frame.columns else "w1"


def best_at(frame: pd.DataFrame, budget: int = GOAL_NFE, metric: str | None = None,
            precision: str = "float32") -> Best | None:
    """The lowest `metric` among rows using at most `budget` NFE, against default DDPM at its largest NFE
    (DDPM-1000 for T = 1000); None when the frame lacks either."""
    metric = metric or quality_metric(frame)
    rows = frame[(frame["precision"] == precision) & frame[metric].notna()]
    candidates = rows[rows["nfe"] <= budget]
    references = rows[(rows["sampler"] == "ddpm") & (rows["settings"] == settings(SamplerConfig("ddpm")))]
    if candidates.empty or references.empty:
        return None
    best, ref = candidates.loc[candidates[metric].idxmin()], references.loc[references["nfe"].idxmax()]
    return Best(metric, budget, best["sampler"], best["settings"], int(best["nfe"]), float(best[metric]),
                int(ref["nfe"]), float(ref[metric]))


def goal_line(frame: pd.DataFrame, budget: int = GOAL_NFE) -> str:
    """best_at(frame, budget).line(), or why there is none."""
    best = best_at(frame, budget)
    return best.line() if best else f"best at <= {budget} NFE: no finite result, or no DDPM reference in this sweep"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value).replace("|", "/")


def with_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each quality metric as text 'value [low, high]' and without its floor and protocol columns
    (protocol_line says them once)."""
    frame = frame.copy()
    for m in [c for c in frame.columns if f"{c}_low" in frame.columns and not c.endswith("_floor")]:
        frame[m] = [_cell(v) if math.isnan(lo) else f"{_cell(v)} [{_cell(lo)}, {_cell(hi)}]"
                    for v, lo, hi in zip(frame[m], frame[f"{m}_low"], frame[f"{m}_high"])]
        frame = frame.drop(columns=[f"{m}_low", f"{m}_high"])
    qualifiers = [c for c in frame.columns if "_floor" in c or c in ("protocol", "n", "cap")]
    return frame.drop(columns=qualifiers)


def protocol_line(frame: pd.DataFrame) -> str:
    """'n = 100 (cap) · floor (95%): fid 2.3 [1.6, 3.0] · protocol of the first row: fid·clf·n500·test·ddpm5·s0'."""
    row = frame.iloc[0]
    floors = [f"{m} {_cell(row[f'{m}_floor'])} [{_cell(row[f'{m}_floor_low'])}, {_cell(row[f'{m}_floor_high'])}]"
              for m in frame.columns if f"{m}_floor_low" in frame.columns]
    cap = f" ({row['cap']})" if isinstance(row["cap"], str) and row["cap"] else ""
    return (f"n = {int(row['n']):,}{cap} · floor (95%): {'; '.join(floors)} · protocol of the first row (each row "
            f"has its own sampler): {row['protocol']}")


def markdown_table(frame: pd.DataFrame) -> str:
    """The study (or its budget) as a Markdown table, quality as 'value [95% interval]' (the error column only when
    some row has one)."""
    frame = with_intervals(frame)
    frame = frame if "error" in frame and frame["error"].astype(bool).any() else frame.drop(columns="error",
                                                                                            errors="ignore")
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def study_checkpoint(checkpoint: str | Path, samplers: Sequence[str], nfe_targets: Sequence[int], out: str | Path, *,
                     n: int = 500, precisions: Sequence[Precision] = ("float32",), seed: int = 0,
                     device: str = "cpu") -> str:
    """`python -m diffusion study`: sweep a run folder, write out (.csv, or .md: the table and the goal line), and
    return that Markdown; one progress line per row goes to stderr."""
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".md"):
        raise ValueError(f"output {str(out)!r}: the study is written as .csv or .md")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: PyTorch sees no CUDA device here; allowed: cpu")
    run = load_run(checkpoint, device)
    say = lambda done, total, row: print(f"[{done}/{total}] {row['precision']} {row['sampler']} {row['nfe']} NFE: "  # noqa: E731
                                         f"{row['seconds']:.1f} s", file=sys.stderr)
    frame = study(run, samplers, nfe_targets, n=n, seed=seed, precisions=precisions, device=device, progress=say)
    report = f"{protocol_line(frame)}\n\n{markdown_table(frame)}\n\n{goal_line(frame)}\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False) if out.suffix.lower() == ".csv" else out.write_text(report)
    return report
