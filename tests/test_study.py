"""diffusion.explore.nfe_study and diffusion.explore.literature: the quality-versus-NFE sweep on the exact Gaussian-mixture denoiser
(a perfect model, so every error is the sampler's), NFE bookkeeping, one noise bank for every sampler, non-finite
detection, low-precision rows, the published reference points, and the CLI command."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from diffusion.cli import main
from diffusion.config import DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore import literature
from diffusion.explore.nfe_study import (
    GOAL_RATIO,
    LowPrecisionNet,
    best_at,
    goal_line,
    markdown_table,
    parse_sampler,
    plan,
    protocol_line,
    settings,
    study,
    with_precision,
)
from diffusion.metrics.evaluation import measure_samples
from diffusion.metrics.points2d import POINT_METRICS, Metric2D, Pair, data_scale
from diffusion.metrics.protocol import METHODS, REFERENCE_SEED, points_protocol
from diffusion.models.model_config import MLPConfig
from diffusion.models.mlp import MLP
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.registry import nfe
from diffusion.sampling.run import Run, Trajectory
from diffusion.training.trainer import Trainer

T, N = 200, 400


class _ExactNet(nn.Module):
    """x0-prediction by the exact posterior mean E[x0 | x_t] of 8gaussians: a perfect model."""

    def __init__(self, alpha_bar: torch.Tensor):
        super().__init__()
        self.denoise = toy_dataset("8gaussians").mixture.denoiser(alpha_bar)
        self.anchor = nn.Parameter(torch.zeros(()))   # Run.sample reads the device from a parameter

    def forward(self, x_t, t, y=None):
        return self.denoise(x_t, t, y)


class _FirstRowNaN(_ExactNet):
    def forward(self, x_t, t, y=None):
        out = super().forward(x_t, t, y)
        out[0] = math.nan
        return out


class _Huge(_ExactNet):
    """Exact, plus a dead linear layer whose weight 1e5 is beyond float16's range (65,504): inf there, 0 in float32."""

    def __init__(self, alpha_bar: torch.Tensor):
        super().__init__(alpha_bar)
        self.gain = nn.Linear(2, 2, bias=False)
        nn.init.constant_(self.gain.weight, 1e5)

    def forward(self, x_t, t, y=None):
        return super().forward(x_t, t, y) + 0 * self.gain(x_t).float()


def _run(net: type = _ExactNet) -> Run:
    config = RunConfig(data=DataConfig("8gaussians"), schedule=ScheduleConfig("linear", T),
                       train=TrainConfig(objective="x0"))
    schedule = config.schedule.build()
    return Run(config, schedule, net(schedule.alpha_bar), step=0, history=[])


@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    return study(_run(), ["ddim", "dpmpp2m", "heun", "ddim:eta=1:spacing=trailing", "ddpm"], (2, 5, 50), n=N)


def test_quality_improves_with_nfe_to_the_floor_on_the_exact_denoiser(sweep):
    for name, setting in (("ddim", "eta=0.0"), ("dpmpp2m", "grid=logsnr")):
        rows = sweep[(sweep["sampler"] == name) & (sweep["settings"] == setting)].set_index("nfe")
        assert rows.loc[2, "w1"] > 2 * rows.loc[50, "w1"]
        assert rows.loc[50, "w1"] < 1.5 * rows.loc[50, "w1_floor"]
        assert rows.loc[2, "kl_true_model"] > rows.loc[50, "kl_true_model"]
    ref = sweep[(sweep["sampler"] == "ddpm") & (sweep["nfe"] == T)].iloc[0]
    assert ref["w1"] < 1.5 * ref["w1_floor"] and (sweep["nonfinite"] == 0).all() and not sweep["error"].any()


def test_rows_carry_each_interval_the_floor_at_the_same_n_and_their_protocol(sweep):
    assert (sweep["n"] == N).all() and (sweep["cap"] == "").all()
    assert (sweep["w1_low"] <= sweep["w1"]).all() and (sweep["w1"] <= sweep["w1_high"]).all()
    assert sweep["w1_floor"].nunique() == 1 and (sweep["w1_floor_low"] < sweep["w1_floor"]).all()
    ddim = sweep[(sweep["sampler"] == "ddim") & (sweep["settings"] == "eta=0.0")]
    assert list(ddim["protocol"]) == [f"2d·n{N}·fresh·ddim{k}·spacing=cubic·s0" for k in (2, 5, 50)]
    assert f"n = {N:,} · floor (95%): w1 " in protocol_line(sweep) and "[" in markdown_table(sweep)


def test_every_sampler_starts_from_the_same_noise_bank(sweep):
    """DDIM with eta=1 over the same steps is DDPM path by path (same x_T and the same later draws): equal rows."""
    ddpm = sweep[(sweep["sampler"] == "ddpm") & (sweep["nfe"] < T)].set_index("nfe")
    eta1 = sweep[sweep["settings"] == "eta=1.0, spacing=trailing"].set_index("nfe")   # ddpm's steps
    pd.testing.assert_frame_equal(ddpm[["w1", "kl_model_true", "max_abs_x"]], eta1[["w1", "kl_model_true", "max_abs_x"]])
    first = {}
    for name in ("ddim", "euler"):
        run, x = _run(), []
        run.sample(8, SamplerConfig(name, steps=3), seed=0, callback=lambda i, t, x_t, x0: x.append((t, x_t)))
        t0, x_t = x[0]
        first[name] = x_t if name == "ddim" else x_t / t0     # euler starts at x_T = sigma_max z (VE space)
    torch.testing.assert_close(first["ddim"], first["euler"])


def test_nfe_bookkeeping_steps_fit_the_targets_and_the_reference_is_added_once(sweep):
    configs = plan(_run(), ["heun", "ddim", "ddpm"], (5, 20, 1000))
    got = [(c.name, c.steps, nfe(c.name, c.steps)) for c in configs]
    assert got == [("heun", 3, 5), ("heun", 10, 19), ("heun", 500, 999), ("ddim", 5, 5), ("ddim", 20, 20),
                   ("ddim", T, T), ("ddpm", 5, 5), ("ddpm", 20, 20), ("ddpm", T, T)]
    assert all(sweep["nfe"] == [nfe(s, k) for s, k in zip(sweep["sampler"], sweep["steps"])])
    assert set(sweep.loc[sweep["sampler"] == "heun", "nfe"]) == {1, 5, 49}    # 2 -> 1 step, 5 -> 3, 50 -> 25
    with pytest.raises(ValueError, match="NFE targets \\[0\\]"):
        plan(_run(), ["ddim"], (0, 5))


def test_max_abs_tracks_the_whole_trajectory(sweep):
    row = sweep[(sweep["sampler"] == "ddim") & (sweep["nfe"] == 5)].iloc[0]
    traj = Trajectory()
    out = _run().sample(N, SamplerConfig("ddim", steps=5), seed=0, trajectory=traj)
    assert row["max_abs_x"] == pytest.approx(float(torch.stack([*traj.x_t, out]).abs().max()))
    assert row["max_abs_x0"] == pytest.approx(float(torch.stack(traj.x0_hat).abs().max()))


def test_non_finite_samples_are_counted_and_leave_no_quality():
    frame = study(_run(_FirstRowNaN), ["ddim"], (5,), n=50, reference=False)
    row = frame.iloc[0]
    assert row["nonfinite"] == 1 and math.isnan(row["w1"]) and row["max_abs_x"] == math.inf
    assert "1 of 50 samples are not finite" in row["error"] and best_at(frame) is None


def test_low_precision_rows_run_the_network_in_that_dtype():
    torch.manual_seed(0)
    net = MLP(MLPConfig())
    x, t = torch.randn(64, 2), torch.randint(0, 1000, (64,))
    for dtype, tol in ((torch.bfloat16, 0.05), (torch.float16, 0.01)):
        low = LowPrecisionNet(net, dtype)
        out = low(x, t)
        assert next(low.parameters()).dtype == dtype and out.dtype == torch.float32
        assert 0 < (out - net(x, t)).abs().max() < tol * net(x, t).abs().max()
    frame = study(_run(), ["ddim"], (20,), n=200, precisions=("float32", "bfloat16", "float16"), reference=False)
    assert list(frame["precision"]) == ["float32", "bfloat16", "float16"] and (frame["nonfinite"] == 0).all()
    assert frame["w1"].nunique() == 3 and frame["w1"].max() - frame["w1"].min() < 0.05   # inputs rounded, same law
    with pytest.raises(ValueError, match="float8"):
        with_precision(_run(), "float8")


def test_float16_overflow_shows_as_non_finite_samples():
    frame = study(_run(_Huge), ["ddim"], (5,), n=20, precisions=("float32", "float16"), reference=False)
    assert list(frame["nonfinite"]) == [0, 20] and frame["error"].iloc[1] == "20 of 20 samples are not finite"


def test_best_at_picks_the_lowest_within_the_budget_against_ddpm_at_its_largest_nfe(sweep):
    best = best_at(sweep, 5)
    within = sweep[(sweep["nfe"] <= 5)]
    assert best.value == within["w1"].min() and best.nfe <= 5 and best.reference_nfe == T
    assert best.ratio == pytest.approx(best.value / sweep.loc[sweep["nfe"] == T, "w1"].min())
    assert best.met == (best.ratio <= GOAL_RATIO) and best.sampler in best.line() and "ratio" in goal_line(sweep, 5)
    assert best_at(sweep[sweep["sampler"] != "ddpm"]) is None
    assert markdown_table(sweep).count("\n") == len(sweep) + 1


def test_parse_sampler_and_settings():
    heun = parse_sampler("heun:grid=karras:rho=5:churn=40")
    assert heun == SamplerConfig("heun", grid="karras", rho=5.0, S_churn=40.0)
    assert settings(heun) == "grid=karras, rho=5.0, S_churn=40.0" and settings(SamplerConfig("dpmpp2m")) == "grid=logsnr"
    assert settings(SamplerConfig("heun")) == "grid=equal_error"        # rho shapes the karras grid only
    assert settings(SamplerConfig("euler", grid="karras")) == "grid=karras, rho=7.0"
    for bad, match in (("ddim:bogus=1", "bogus"), ("ddim:eta=x", "'x' is not a number"), ("nope", "nope")):
        with pytest.raises(ValueError, match=match):
            parse_sampler(bad)


def test_literature_points_and_their_relative_axis():
    frame = literature.literature_frame()
    ddim = frame[frame["source"] == literature.DDIM_2020]
    assert len(ddim) == 25 and ddim.groupby("curve")["fid"].apply(lambda f: f.is_monotonic_decreasing).all()
    assert (ddim.loc[ddim["nfe"] == 1000, "relative"] == 1).all()
    eta0 = ddim[ddim["curve"] == "DDIM eta=0"].set_index("nfe")
    assert eta0.loc[10, "fid"] == 13.36 and eta0.loc[10, "relative"] == pytest.approx(13.36 / 4.04)
    dpm = frame[frame["curve"] == "DPM-Solver"].set_index("nfe")
    assert dpm.loc[20, "relative"] == 1 and dpm.loc[10, "relative"] == pytest.approx(4.70 / 2.87)
    edm = frame[frame["source"] == literature.EDM_2022]
    assert set(edm["nfe"]) == {35} and set(edm["fid"]) == {1.79, 1.97}


def test_cli_study_prints_the_table_and_goal_line(tmp_path, capsys):
    trainer = Trainer(RunConfig(data=DataConfig("moons", n=500), train=TrainConfig(steps=20, batch_size=64)),
                      toy_dataset("moons").sample(500, torch.Generator().manual_seed(0)))
    trainer.run(run_dir=tmp_path / "run")
    out = tmp_path / "study.md"
    assert main(["study", "--checkpoint", str(tmp_path / "run"), "--samplers", "ddim,heun:grid=karras:rho=5", "--nfe", "2,5",
                 "--n", "50", "--precision", "float32,bfloat16", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "| float32 | heun | grid=karras, rho=5.0 | 5 | 3 |" in printed.out and "best at <= 20 NFE" in printed.out
    assert out.read_text() == printed.out[:-1] and printed.err.count("NFE:") == 10   # 2 x (4 + reference)
    assert main(["study", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "x.txt")]) == 2
    assert "x.txt" in capsys.readouterr().err


def _mean_norm_gap(pair: Pair) -> tuple[float, float]:
    """A throwaway metric: |mean |x| - mean |x_ref|| in data units, sd std(|x|) / sqrt(n)."""
    norms = np.linalg.norm(pair.samples, axis=1)
    gap = abs(norms.mean() - np.linalg.norm(pair.reference, axis=1).mean()) / pair.scale
    return float(gap), float(norms.std(ddof=1) / np.sqrt(len(norms)) / pair.scale)


def test_a_metric_registered_once_is_measured_by_the_protocol_and_named_in_the_study(monkeypatch):
    monkeypatch.setitem(POINT_METRICS, "mean_norm_gap", Metric2D("mean_norm_gap", "mean |x| gap", "std / sqrt(n)",
                                                                 _mean_norm_gap))
    monkeypatch.setitem(METHODS, "mean_norm_gap", "std / sqrt(n)")   # METHODS is read from the registry at import
    n, toy = 123, toy_dataset("8gaussians")            # an n no other test uses: a reference built with the metric
    samples = toy.sample(n, torch.Generator().manual_seed(7))
    result = measure_samples(samples, points_protocol(n), DataConfig("8gaussians"))
    reference = toy.sample(n, torch.Generator().manual_seed(REFERENCE_SEED)).double().numpy()
    expected = abs(samples.double().norm(dim=1).mean().item() - np.linalg.norm(reference, axis=1).mean()) \
        / data_scale(reference)
    gap, floor = result.metrics["mean_norm_gap"], result.floor["mean_norm_gap"]
    assert gap.value == pytest.approx(expected, rel=1e-9) and gap.method == "std / sqrt(n)"
    assert 0 <= gap.low <= gap.value <= gap.high and 0 <= floor.low <= floor.value <= floor.high
    frame = study(_run(), ["ddim"], (5,), n=n, reference=False)
    assert {"mean_norm_gap", "mean_norm_gap_low", "mean_norm_gap_high", "mean_norm_gap_floor"} <= set(frame.columns)
    assert frame["mean_norm_gap_low"].iloc[0] <= frame["mean_norm_gap"].iloc[0] <= frame["mean_norm_gap_high"].iloc[0]
    assert "mean_norm_gap" in markdown_table(frame).splitlines()[0] and "mean_norm_gap " in protocol_line(frame)
