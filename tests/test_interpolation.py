"""slerp against its geometry, and DDIM interpolation paths whose endpoints are the run's own samples."""

import math

import pytest
import torch

from diffusion.config import RunConfig, TrainConfig
from diffusion.explore.interpolation import initial_noise, interpolate_labels, interpolate_noise, slerp
from diffusion.models.model_config import MLPConfig
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.trainer import Trainer


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.acos(float((a.double() * b.double()).sum() / (a.double().norm() * b.double().norm())))


def test_slerp_endpoints_are_exact_and_angles_are_uniform():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(3, 16, 16, generator=g), torch.randn(3, 16, 16, generator=g)
    path = slerp(z0, z1, [0.0, 0.25, 0.5, 1.0])
    assert path.shape == (4, 3, 16, 16) and path.dtype == z0.dtype
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    z1 = z1 * z0.norm() / z1.norm()                                 # on a sphere: the path is its great circle,
    path, theta = slerp(z0, z1, [0.25, 0.5]), _angle(z0, z1)        # at angle a * theta from z0
    for a, z in zip((0.25, 0.5), path):
        assert _angle(z0, z) == pytest.approx(a * theta, abs=1e-5)
        assert _angle(z, z1) == pytest.approx((1 - a) * theta, abs=1e-5)


def test_slerp_preserves_norms_where_lerp_shrinks_them():
    g = torch.Generator().manual_seed(1)
    d = 3 * 16 * 16
    z0, z1 = torch.randn(d, generator=g), torch.randn(d, generator=g)
    alphas = torch.linspace(0, 1, 11)
    norms = slerp(z0, z1 * z0.norm() / z1.norm(), alphas).norm(dim=1)       # equal norms: exactly preserved
    torch.testing.assert_close(norms, z0.norm().expand(11), rtol=1e-6, atol=0)
    gaussian = slerp(z0, z1, alphas).norm(dim=1)                              # unequal norms: stays between them
    low, high = sorted((float(z0.norm()), float(z1.norm())))
    assert gaussian.min() >= low * (1 - 1e-6) and gaussian.max() <= high * (1 + 1e-6)
    assert float(((z0 + z1) / 2).norm()) < 0.75 * low                        # lerp's midpoint: ~1/sqrt(2)


def test_slerp_falls_back_to_lerp_for_parallel_vectors_and_rejects_degenerate_ones():
    z = torch.randn(8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(slerp(z, 2 * z, [0.0, 0.5, 1.0]), torch.stack([z, 1.5 * z, 2 * z]))
    with pytest.raises(ValueError, match="opposite"):
        slerp(z, -z, [0.5])
    with pytest.raises(ValueError, match="zero vector"):
        slerp(z, torch.zeros(8), [0.5])
    with pytest.raises(ValueError, match="one shape"):
        slerp(z, z[:4], [0.5])


@pytest.fixture(scope="module")
def conditional_run():
    """A tiny class-conditional MLP run on 2D points (a few steps: interpolation is about wiring, not quality)."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (256,), generator=g)
    x = torch.randn(256, 2, generator=g) * 0.1 + torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])[y]
    config = RunConfig(model=MLPConfig(num_classes=3, width=32, depth=2), train=TrainConfig(steps=20, warmup_steps=1))
    trainer = Trainer(config, x, y)
    trainer.run()
    return trainer.as_run()


def test_noise_interpolation_endpoints_are_the_runs_own_samples(conditional_run):
    run = conditional_run
    path = interpolate_noise(run, 5, seed_a=3, seed_b=4, steps=10, y=1)
    assert path.shape == (5, 2)
    label = torch.tensor([1])
    for seed, end in ((3, path[0]), (4, path[-1])):
        sample = run.sample(1, SamplerConfig(steps=10), seed=seed, y=label)[0]
        torch.testing.assert_close(end, sample, rtol=1e-5, atol=1e-5)
    assert torch.equal(interpolate_noise(run, 5, 3, 4, steps=10, y=1), path)        # deterministic
    assert (path[1:] - path[:-1]).norm(dim=1).min() > 0
    assert torch.equal(initial_noise(run, 3), initial_noise(run, 3))


def test_label_interpolation_mixes_predictions_and_ends_at_each_label(conditional_run):
    run = conditional_run
    path = interpolate_labels(run, 0, 2, 4, seed=7, steps=10)
    for label, end in ((0, path[0]), (2, path[-1])):
        sample = run.sample(1, SamplerConfig(steps=10), seed=7, y=torch.tensor([label]))[0]
        torch.testing.assert_close(end, sample, rtol=1e-5, atol=1e-5)
    assert (path[1:] - path[:-1]).norm(dim=1).min() > 0                            # the label changes the output
    with pytest.raises(ValueError, match=r"label 3 is out of range; allowed: 0\.\.2"):
        interpolate_labels(run, 0, 3, 4, seed=7)
    with pytest.raises(ValueError, match="n_points=1"):
        interpolate_labels(run, 0, 1, 1, seed=7)


def test_label_interpolation_needs_a_conditional_run():
    trainer = Trainer(RunConfig(model=MLPConfig(width=16, depth=1)), torch.zeros(8, 2))
    with pytest.raises(ValueError, match="class-conditional"):
        interpolate_labels(trainer.as_run(), 0, 1, 3, seed=0)
