"""Guidance in 2D: labelled sets, the exact guided denoiser of labelled mixtures against finite differences of the log
of the guided density (Tweedie), the exact model as a Run, and guided quality per class."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.core.oracles import GaussianMixture, guided_posterior_mean
from diffusion.data import load_data
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore.exact import MixtureNet, exact_run
from diffusion.explore.guidance2d import guidance_sweep, guided_frame
from diffusion.explore.quality2d import class_quality, off_support
from diffusion.models.model_config import MLPConfig
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.trainer import Trainer

WEIGHTS = [0.5, 0.3, 0.2]
MEANS = [[1.0, 0.5], [-1.5, 1.0], [0.5, -2.0]]
COVS = [[[0.3, 0.1], [0.1, 0.2]], [[0.5, -0.2], [-0.2, 0.4]], [[0.1, 0.0], [0.0, 0.6]]]
LABELS = torch.tensor([0, 1, 1])    # class 1 is a two-component sub-mixture


@pytest.fixture(scope="module")
def tiny_conditional_run():
    """A class-conditional MLP trained 200 steps on labelled moons (label dropout 0.1)."""
    data_cfg = DataConfig("moons", n=2000)
    data = load_data(data_cfg)
    config = RunConfig(data_cfg, model=MLPConfig(width=32, depth=2, num_classes=data.num_classes),
                       train=TrainConfig(steps=200, objective="v"))
    trainer = Trainer(config, data.x, data.y)
    trainer.run()
    return trainer.as_run()


def _log_p(x: np.ndarray, ab: float, keep: list[int]) -> np.ndarray:
    """log of sum_{k in keep} w_k N(x; sqrt(ab) m_k, ab C_k + (1 - ab) I) / sum_{k in keep} w_k, in float64 (scipy)."""
    total = sum(WEIGHTS[k] for k in keep)
    return np.log(sum(WEIGHTS[k] / total * multivariate_normal(np.sqrt(ab) * np.array(MEANS[k]),
                                                                ab * np.array(COVS[k]) + (1 - ab) * np.eye(2)).pdf(x)
                      for k in keep))


@pytest.mark.parametrize("ab", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("w", [0.0, 1.0, 3.0, 7.5])
@pytest.mark.parametrize("y", [0, 1])
def test_exact_guided_denoiser_is_tweedie_of_the_guided_density(ab, w, y):
    """uncond + w (cond - uncond) = (x + (1 - ab) grad[(1 - w) log p_t(x) + w log p_t(x | y)]) / sqrt(ab), the
    gradient by central differences of scipy's densities (independent of the code under test)."""
    gm = GaussianMixture(torch.tensor(WEIGHTS), torch.tensor(MEANS), torch.tensor(COVS))
    x = np.array([[0.0, 0.0], [1.2, -0.4], [-0.8, 1.5], [0.3, -1.7]])
    keep = [k for k in range(3) if LABELS[k] == y]
    log_tilted = lambda z: (1 - w) * _log_p(z, ab, [0, 1, 2]) + w * _log_p(z, ab, keep)  # noqa: E731
    h = 1e-5
    grad = np.stack([(log_tilted(x + h * e) - log_tilted(x - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    expected = (x + (1 - ab) * grad) / np.sqrt(ab)
    got = guided_posterior_mean(gm, LABELS, torch.tensor(x, dtype=torch.float32), torch.full((4,), ab),
                                torch.full((4,), y), w)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=2e-4 * max(1.0, w))


def test_class_mask_is_the_renormalised_sub_mixture():
    gm = GaussianMixture(torch.tensor(WEIGHTS), torch.tensor(MEANS), torch.tensor(COVS))
    sub = GaussianMixture(torch.tensor([0.6, 0.4]), torch.tensor(MEANS[1:]), torch.tensor(COVS[1:]))
    x, ab = torch.randn(50, 2, generator=torch.Generator().manual_seed(0)) * 2, torch.full((50,), 0.4)
    cond = guided_posterior_mean(gm, LABELS, x, ab, torch.ones(50, dtype=torch.long), 1.0)
    torch.testing.assert_close(cond, sub.posterior_mean(x, ab), rtol=0, atol=1e-6)
    torch.testing.assert_close(guided_posterior_mean(gm, LABELS, x, ab, torch.ones(50, dtype=torch.long), 0.0),
                               gm.posterior_mean(x, ab), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"classes \[2\] have no component"):
        guided_posterior_mean(gm, LABELS, x[:1], ab[:1], torch.tensor([2]), 2.0)


def test_the_exact_run_guides_like_the_oracle():
    run = exact_run("8gaussians")
    toy = toy_dataset("8gaussians")
    assert isinstance(run.net, MixtureNet) and run.num_classes == 8
    x_t = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    t, y = torch.full((64,), 400), torch.arange(64) % 8
    for w in (1.0, 3.0):
        got = run.denoiser(SamplerConfig(guidance=w, clip=False))(x_t, t, y)
        expected = guided_posterior_mean(toy.mixture, toy.component_labels, x_t, run.schedule.alpha_bar[t], y, w)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert exact_run("moons") is None


def test_exact_conditional_sampling_draws_each_class():
    """w = 1 with the exact model: class y's samples have component y's mean (8gaussians: one component a class)."""
    toy, n = toy_dataset("8gaussians"), 800
    frame = guided_frame(exact_run("8gaussians"), 1.0, n, SamplerConfig("ddpm", 1000))
    std = float(toy.mixture.covs[0, 0, 0].sqrt())
    for label, group in frame.groupby("label"):
        mean = torch.tensor(group[["x", "y"]].to_numpy().mean(axis=0), dtype=torch.float64)
        assert (mean - toy.mixture.means[label]).abs().max() < 5 * std / np.sqrt(len(group))
    assert off_support(frame[["x", "y"]].to_numpy(), "8gaussians").mean() < 0.04


def test_labelled_presets_draw_consistent_classes():
    g = torch.Generator().manual_seed(3)
    x, y = toy_dataset("checkerboard").sample_labelled(4000, g)
    raw = x.double() * np.sqrt(4 / 3)                                        # back to the [-2, 2]^2 board
    col, row = (raw[:, 0] + 2).floor().long(), (raw[:, 1] + 2).floor().long()
    assert torch.equal(y, 2 * col + row // 2) and ((row + col) % 2 == 0).all()
    x, y = toy_dataset("circles").sample_labelled(4000, g)
    radius = x.norm(dim=1)
    assert radius[y == 1].max() < radius[y == 0].min()                      # inner circle is class 1
    x, y = toy_dataset("8gaussians").sample_labelled(4000, g)
    nearest = torch.cdist(x.double(), toy_dataset("8gaussians").mixture.means).argmin(dim=1)
    assert (nearest == y).float().mean() > 0.99
    for name in ("moons", "spirals", "25gaussians"):
        x, y = toy_dataset(name).sample_labelled(100, torch.Generator().manual_seed(5))
        assert torch.equal(x, toy_dataset(name).sample(100, torch.Generator().manual_seed(5)))
        assert set(y.tolist()) <= set(range(toy_dataset(name).num_classes))
    assert toy_dataset("gaussian").num_classes == toy_dataset("swissroll").num_classes == 0


def test_class_quality_of_true_points_is_at_its_floor():
    toy = toy_dataset("moons")
    x, y = toy.sample_labelled(2000, torch.Generator().manual_seed(7))
    frame = class_quality(x, y, "moons", seed=1).set_index("label")
    assert list(frame.index) == ["all", "0", "1"] and frame.loc["all", "n"] == 2000
    assert (frame["reading"] == "at the floor").all() and (frame["off_support"] < 0.03).all()
    assert (frame["w1_low"] <= frame["w1"]).all() and (frame["floor_low"] < frame["floor"]).all()
    far = class_quality(x + 3.0, y, "moons").set_index("label")
    assert (far["ratio"] > 10).all() and (far["reading"] == "above the floor").all() and (far["off_support"] > 0.9).all()


def test_guidance_sweep_of_a_trained_conditional_run(tiny_conditional_run):
    frame = guidance_sweep(tiny_conditional_run, (0.0, 1.0, 6.0), n=300, sampler=SamplerConfig("ddim", 20))
    assert set(frame["source"]) == {"learned"} and set(frame["w"]) == {0.0, 1.0, 6.0}
    assert set(frame["label"]) == {"all", "0", "1"} and frame["w1"].notna().all()
    with pytest.raises(ValueError, match="class-conditional run"):
        guided_frame(exact_run("gaussian"), 2.0, 10)
