"""diffusion.explore.toy2d_experiments against exact answers: schedule values, the forward process in closed form, and a
"perfect model" (the exact mixture denoiser as the network) whose learned field must equal the exact one."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from diffusion.config import DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.core.schedules import make_schedule
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore import toy2d_experiments as explore2d
from diffusion.metrics import evaluation
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

K_SE = 5.0   # tolerance in Monte Carlo standard errors


class _ExactNet(nn.Module):
    """x0-prediction by the exact posterior mean E[x0 | x_t] of the data's mixture: a perfect model."""

    def __init__(self, dataset: str, alpha_bar: torch.Tensor):
        super().__init__()
        self.denoise = toy_dataset(dataset).mixture.denoiser(alpha_bar)
        self.anchor = nn.Parameter(torch.zeros(()))   # Run.sample reads the device from a parameter

    def forward(self, x_t, t, y=None):
        return self.denoise(x_t, t, y)


class _NaNNet(_ExactNet):
    def forward(self, x_t, t, y=None):
        return torch.full_like(x_t, math.nan)


def _run(dataset: str = "8gaussians", law: str | None = None, net: type = _ExactNet, T: int = 100) -> Run:
    """A Run on `dataset` whose network is the exact denoiser of `law` (default: the dataset's own law)."""
    config = RunConfig(data=DataConfig(dataset), schedule=ScheduleConfig("linear", T),
                       train=TrainConfig(objective="x0"))
    schedule = config.schedule.build()
    return Run(config, schedule, net(law or dataset, schedule.alpha_bar), step=0, history=[])


def test_schedule_frame_lists_the_schedule_against_paper_t():
    s = make_schedule("cosine", 200)
    df = explore2d.schedule_frame(s)
    assert list(df.columns) == ["t", "beta", "alpha_bar", "log_snr"] and list(df["t"]) == list(range(1, 201))
    np.testing.assert_array_equal(df["alpha_bar"], s.alpha_bar.numpy())
    ab = df["alpha_bar"].to_numpy(np.float64)
    np.testing.assert_allclose(df["log_snr"], np.log(ab / (1 - ab)), rtol=1e-5, atol=1e-6)  # float32 snr


def test_terminal_noise_flags_a_short_unscaled_linear_schedule():
    short = explore2d.terminal_noise(make_schedule("linear_unscaled", 50))
    betas = np.linspace(1e-4, 0.02, 50)
    assert short.alpha_bar_T == pytest.approx(np.prod(1 - betas), rel=1e-5) and short.far_from_normal
    assert short.signal == pytest.approx(math.sqrt(short.alpha_bar_T))
    ddpm = explore2d.terminal_noise(make_schedule("linear", 1000))
    assert ddpm.alpha_bar_T < 1e-4 and not ddpm.far_from_normal
    assert ddpm.snr_T == pytest.approx(ddpm.alpha_bar_T / (1 - ddpm.alpha_bar_T), rel=1e-3)


def test_noised_points_follow_the_closed_form_with_one_fixed_eps():
    s = make_schedule("linear", 1000)
    zeros, ones = np.zeros((20_000, 2), np.float32), np.ones((20_000, 2), np.float32)
    x0 = explore2d.toy_points("moons", 100, seed=3)
    np.testing.assert_array_equal(explore2d.noised_points(x0, s, 0, seed=1), x0)
    for paper_t in (1, 250, 1000):
        ab = float(s.alpha_bar[paper_t - 1])
        noise = explore2d.noised_points(zeros, s, paper_t, seed=1)          # sqrt(1 - ab) eps
        shifted = explore2d.noised_points(ones, s, paper_t, seed=1)         # + sqrt(ab) x0, same eps
        np.testing.assert_allclose(shifted - noise, math.sqrt(ab), atol=1e-5)
        std, se = math.sqrt(1 - ab), math.sqrt(1 - ab) / math.sqrt(2 * noise.size)
        assert abs(noise.std() - std) < K_SE * se
    with pytest.raises(ValueError, match="paper_t=1001"):
        explore2d.noised_points(x0, s, 1001, seed=1)


def test_a_perfect_model_has_the_exact_field():
    run = _run()
    df = explore2d.denoising_fields(run, t=40, size=9)
    learned, exact = (df[df["field"] == f].reset_index(drop=True) for f in ("learned", "exact"))
    assert len(learned) == len(exact) == 81
    np.testing.assert_array_equal(learned[["u", "v", "x2", "y2"]], exact[["u", "v", "x2", "y2"]])


def test_score_field_of_a_gaussian_is_minus_the_inverse_noised_covariance():
    run = _run("gaussian")
    t = 30
    ab = float(run.schedule.alpha_bar[t])
    df = explore2d.denoising_fields(run, t=t, size=7, kind="score")
    cov = ab * np.array([[1.0, 0.8], [0.8, 1.0]]) + (1 - ab) * np.eye(2)   # law of x_t, Ho eq. 4
    expected = -df[["x", "y"]].to_numpy() @ np.linalg.inv(cov).T          # learned and exact rows alike
    np.testing.assert_allclose(df[["u", "v"]].to_numpy(), expected, rtol=1e-4, atol=1e-4)
    lengths = np.hypot(df["x2"] - df["x"], df["y2"] - df["y"])
    assert lengths.max() <= 1.5 * 1.0 + 1e-6                                # 1.5 grid cells (cell = 6 / 6)


def test_no_exact_field_without_a_closed_form():
    run = _run("moons", law="8gaussians")
    assert set(explore2d.denoising_fields(run, t=10, size=5)["field"]) == {"learned"}


def test_trajectory_frame_records_every_step_and_ends_at_the_sample():
    run, sampler = _run(), SamplerConfig("ddpm", steps=10)
    df = explore2d.trajectory_frame(run, sampler, n=16, seed=2)
    assert len(df) == 11 * 16 and df["frame"].max() == 10
    assert df.loc[df["frame"] == 0, "t"].unique().tolist() == [100]         # trailing spacing starts at T
    last = df[df["frame"] == 10]
    assert (last["t"] == 0).all()
    np.testing.assert_array_equal(last[["x", "y"]].to_numpy(), run.sample(16, sampler, seed=2).numpy())
    np.testing.assert_array_equal(last[["x", "y"]].to_numpy(), last[["x0_x", "x0_y"]].to_numpy())
    paths = explore2d.trajectory_paths(df, n_points=4, max_frames=5)
    assert set(paths["point"]) == {0, 1, 2, 3} and paths["frame"].nunique() == 5 and paths["frame"].max() == 10


def test_live_metrics_of_the_exact_denoiser_sit_near_the_floor():
    """The exact denoiser with DDIM-50 reads at the floor in W1; its samples are a little more concentrated than
    the data (DDIM's discretisation: covariance 0.89 for 0.99 at 50 steps), which KL and NLL see."""
    run = _run("gaussian")
    result, samples = evaluation.measure_run(run, evaluation.live_protocol(run))
    assert len(samples) == result.n == evaluation.LIVE_2D_N and set(explore2d.METRICS) <= set(result.metrics)
    assert result.reading("w1") == "at the floor" and result.reading("nll").startswith("below the floor: samples")
    assert all(result.metrics[m].value < 2 * result.floor[m].value for m in explore2d.METRICS)


def test_sampler_sweep_caps_steps_at_T_and_reports_nan_samples():
    sweep = explore2d.sampler_sweep(_run("gaussian"), "ddim",
                                    steps=(5, 100, 1000))
    assert list(sweep["steps"]) == [5, 100] and (sweep["error"] == "").all()
    assert sweep["w1"].notna().all() and (sweep["w1_low"] <= sweep["w1"]).all() and (sweep["n"] == 1000).all()
    assert list(sweep["protocol"]) == ["2d·n1000·fresh·ddim5·spacing=cubic·s0", "2d·n1000·fresh·ddim100·spacing=cubic·s0"]
    broken = explore2d.sampler_sweep(_run(net=_NaNNet), "ddpm", steps=(5,))
    assert broken["w1"].isna().all() and "non-finite" in broken["error"].iloc[0]


def test_loss_frame_bins_consecutive_steps_and_keeps_the_mean():
    steps, loss = np.arange(1, 1001), np.random.default_rng(0).random(1000)
    df = explore2d.loss_frame(steps, loss, max_points=100)
    assert len(df) == 100 and df["step"].iloc[-1] == 1000 and df["step"].is_monotonic_increasing
    assert df["loss"].mean() == pytest.approx(loss.mean())
    assert len(explore2d.loss_frame(np.arange(1, 8), np.ones(7), max_points=3)) == 3
    assert explore2d.loss_frame([], []).empty


def test_metrics_frame_is_long_with_each_interval_and_the_floor_beside_each_value():
    run = _run("gaussian")
    row = {"step": 100, **evaluation.measure_run(run, evaluation.live_protocol(run))[0].row()}
    df = explore2d.metrics_frame([row, {"step": 200, "w1": 0.3}])
    assert list(df.columns) == ["step", "metric", "value", "low", "high", "floor", "floor_low", "floor_high"]
    assert len(df) == 5 and set(df["metric"]) == set(explore2d.METRICS)
    w1 = df[df["metric"] == "w1"].set_index("step")
    assert w1.loc[100, "value"] == row["w1"] and w1.loc[100, "floor_low"] == row["w1_floor_low"]
    assert w1.loc[200, "value"] == 0.3 and w1.loc[200, ["low", "floor"]].isna().all()   # an old row: no interval


def test_field_magnitudes_and_grid_bounds():
    df = explore2d.denoising_fields(_run(), t=20, size=11)
    np.testing.assert_allclose(df["magnitude"], np.hypot(df["u"], df["v"]))
    for size in (2, explore2d.MAX_FIELD_SIZE + 1, 7.5):
        with pytest.raises(ValueError, match="field grid size"):
            explore2d.denoising_fields(_run(), t=20, size=size)


def test_forward_frames_move_each_point_toward_its_own_noise():
    s = make_schedule("linear", 1000)
    x0 = explore2d.toy_points("moons", 50, seed=3)
    frame = explore2d.forward_frame(x0, s, frames=10, seed=4)
    assert list(frame["t"].unique()) == list(range(0, 1001, 100)) and len(frame) == 11 * 50
    np.testing.assert_array_equal(frame[frame["frame"] == 0][["x", "y"]].to_numpy(), x0)
    last = frame[frame["frame"] == 10][["x", "y"]].to_numpy()
    np.testing.assert_allclose(last, explore2d.noised_points(x0, s, 1000, seed=4))
    with pytest.raises(ValueError, match="frames=0"):
        explore2d.forward_frame(x0, s, frames=0)
