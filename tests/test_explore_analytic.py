"""The analytic denoisers as runs beside the shipped digit-0 U-Net (explore.analytic_comparison): every kind of sampler
drives them, the optimal denoiser's samples are training images, all sides start from the same noises, and the
agreement along t reads as the network's generalisation predicts."""

import pytest
import torch

from diffusion.explore import analytic_comparison as an
from diffusion.explore.image_experiments import training_set
from diffusion.metrics.image_metrics import nearest_neighbours
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.checkpoints import CHECKPOINTS_DIR, load_run


@pytest.fixture(scope="module")
def run():
    return load_run(CHECKPOINTS_DIR / "mnist16-digit0")


@pytest.mark.parametrize("sampler", [SamplerConfig("ddim", steps=20), SamplerConfig("heun", steps=10),
                                     SamplerConfig("flow_euler", steps=20)])
def test_the_optimal_denoiser_samples_training_images_with_every_kind_of_sampler(run, sampler):
    x = an.analytic_run(run, "empirical").sample(4, sampler, seed=3)
    assert x.shape == (4, 1, 16, 16)
    assert nearest_neighbours(x, training_set(run.config.data).x)[1].max() < 1e-3


def test_side_by_side_starts_every_denoiser_from_the_same_noises(run):
    sampler = SamplerConfig("ddim", steps=10)
    sets = an.side_by_side(run, 3, sampler, seed=5)
    assert list(sets) == ["network", *an.ANALYTIC]
    assert torch.equal(sets["network"].samples, run.sample(3, sampler, seed=5))
    assert float(sets["empirical"].ratio.max()) < 1e-3 and sets["empirical"].copies().value == 1.0
    summary = an.summary(sets)
    assert summary["RMS to network"].iloc[0] == 0.0 and (summary["RMS to network"].iloc[1:] > 0).all()


def test_agreement_along_t(run):
    frame = an.agreement(run, n=6, timesteps=(0, 999))
    assert set(frame["denoiser"]) == {"truth", *an.ANALYTIC} and (frame["low"] <= frame["value"]).all()
    at_1 = frame[frame["t"] == 1].set_index("denoiser")["value"]
    assert at_1["gaussian"] < 1e-3                 # at t = 1 the network and the Gaussian both return ~x_t
    assert at_1["empirical"] > 10 * at_1["truth"]  # the optimal denoiser snaps a held-out zero to a training one;
    #                                                the network keeps it: it does not memorise
    assert set(an.closest_by_noise(frame)["t"]) == {1, 1000}


@pytest.fixture(scope="module")
def cond():
    return load_run(CHECKPOINTS_DIR / "mnist16-cond")


def test_a_conditional_run_s_denoisers_are_per_class(run, cond):
    """Class 0 of the conditional run is the digit-0 run's training set: the same optimal denoiser, to the bit."""
    digit0, per_class = an.analytic_run(run, "empirical").net, an.analytic_run(cond, "empirical").net
    x_t, t = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([5, 300, 800])
    assert torch.equal(per_class(x_t, t, torch.zeros(3, dtype=torch.long)), digit0(x_t, t))
    assert per_class.null_label == cond.net.null_label == 10


def test_side_by_side_on_a_conditional_run_with_guidance(cond):
    """Balanced labels and the same noises on both sides; the optimal denoiser's samples, guided (w = 2) or not, are
    training images of the asked class."""
    for w in (1.0, 2.0):
        sampler = SamplerConfig("ddim", steps=5, guidance=w)
        sets = an.side_by_side(cond, 10, sampler, seed=2, others={"empirical": an.analytic_run(cond, "empirical")})
        labels = cond.balanced_labels(10)
        assert torch.equal(sets["network"].samples, cond.sample(10, sampler, seed=2, y=labels))
        empirical = sets["empirical"]
        assert float(empirical.distance.max()) < 1e-3, w
        assert torch.equal(training_set(cond.config.data).y[empirical.nearest], labels), w
    assert an.denoiser_calls(cond, 10, sampler) == 11 and an.denoiser_calls(cond, 3, SamplerConfig()) == 3


def test_agreement_on_a_conditional_run(cond):
    frame = an.agreement(cond, n=4, timesteps=(0, 999), others=an.analytic_runs(cond, ("empirical", "gaussian")))
    at_1 = frame[frame["t"] == 1].set_index("denoiser")["value"]
    assert at_1["gaussian"] < 1e-3 and at_1["empirical"] > 10 * at_1["truth"]
    assert (frame["low"] <= frame["value"]).all()


def test_bad_runs_and_kinds_are_refused():
    with pytest.raises(ValueError, match="analytic denoisers are built for image runs"):
        an.analytic_run(load_run(CHECKPOINTS_DIR / "moons"), "gaussian")
    with pytest.raises(ValueError, match="unknown analytic denoiser 'kde'; allowed: empirical, gaussian, patch"):
        an.analytic_net("kde", torch.zeros(2, 1, 4, 4), torch.ones(10))
