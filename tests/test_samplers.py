import pytest
import torch
from conftest import N

from diffusion.config import RunConfig, TrainConfig
from diffusion.core.denoisers import clipped, guided
from diffusion.core.schedules import make_schedule, spaced_timesteps
from diffusion.data.toy_datasets import toy_dataset
from diffusion.metrics.points2d import wasserstein
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Trajectory
from diffusion.sampling.vp import SeededNoise, ddim_sample, ddpm_sample
from diffusion.training.trainer import Trainer


def _oracle(name="8gaussians", schedule="linear", T=1000):
    sch = make_schedule(schedule, T)
    mixture = toy_dataset(name).mixture
    return sch, mixture, mixture.denoiser(sch.alpha_bar)


def test_ddim_eta_one_over_all_steps_is_ddpm_path_by_path():
    sch, _, denoise = _oracle(T=200)
    ts = spaced_timesteps(200, 200)
    noise_a, noise_b = SeededNoise(range(64), (2,)), SeededNoise(range(64), (2,))
    x_a = ddpm_sample(denoise, sch, noise_a(), ts, noise=noise_a)
    x_b = ddim_sample(denoise, sch, noise_b(), ts, eta=1.0, noise=noise_b)
    torch.testing.assert_close(x_a, x_b, rtol=1e-4, atol=1e-4)
    # a different noise stream gives different paths: the equality above is not vacuous
    noise_c = SeededNoise(range(100, 164), (2,))
    assert (ddpm_sample(denoise, sch, noise_c(), ts, noise=noise_c) - x_a).abs().max() > 0.5


@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", 1000, 0.0), ("ddim", 50, 0.0), ("ddim", 250, 1.0)])
def test_exact_denoiser_reproduces_mixture(floor_8gaussians, sampler, steps, eta):
    ref, floor_mean, floor_std = floor_8gaussians
    sch, _, denoise = _oracle()
    ts = spaced_timesteps(1000, steps)
    noise = SeededNoise(range(N), (2,))
    if sampler == "ddpm":
        x = ddpm_sample(denoise, sch, noise(), ts, noise=noise)
    else:
        x = ddim_sample(denoise, sch, noise(), ts, eta=eta, noise=noise)
    assert wasserstein(x, ref) < floor_mean + 4 * floor_std


def test_exact_denoiser_with_beta_variance_and_respacing(floor_8gaussians):
    ref, floor_mean, floor_std = floor_8gaussians
    sch, _, denoise = _oracle(schedule="cosine")
    noise = SeededNoise(range(N), (2,))
    x = ddpm_sample(denoise, sch, noise(), spaced_timesteps(1000, 250), noise=noise, variance="beta")
    assert wasserstein(x, ref) < floor_mean + 4 * floor_std


def test_wrong_model_is_detected(floor_8gaussians):
    """The W1 check can fail: the oracle of the 25-Gaussian grid does not produce the ring."""
    ref, floor_mean, floor_std = floor_8gaussians
    sch, _, denoise = _oracle("25gaussians")
    noise = SeededNoise(range(N), (2,))
    x = ddim_sample(denoise, sch, noise(), spaced_timesteps(1000, 50))
    assert wasserstein(x, ref) > floor_mean + 10 * floor_std


def test_seeded_noise_depends_on_seed_not_batch():
    a, b = SeededNoise([5, 6, 7], (2, 3)), SeededNoise([9, 6, 5], (2, 3))
    for _ in range(40):  # crosses the chunk boundary
        za, zb = a(), b()
        torch.testing.assert_close(za[0], zb[2])
        torch.testing.assert_close(za[1], zb[1])
        assert not torch.equal(za[2], zb[0])


@pytest.fixture(scope="module")
def tiny_run():
    x = toy_dataset("moons").sample(2000, torch.Generator().manual_seed(0))
    trainer = Trainer(RunConfig(train=TrainConfig(steps=200)), x)
    trainer.run()
    return trainer.as_run()


@pytest.mark.parametrize("sampler", [SamplerConfig("ddpm", 100), SamplerConfig("ddim", 20, eta=0.5)])
def test_run_samples_depend_on_seed_not_batch(tiny_run, sampler):
    full = tiny_run.sample(40, sampler, seed=3, batch_size=16)
    # equal up to float rounding: BLAS may sum in another order for another batch shape
    torch.testing.assert_close(tiny_run.sample(10, sampler, seed=3, batch_size=7), full[:10], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(tiny_run.sample(10, sampler, seed=4), full[:10])


def test_trajectory_records_every_step(tiny_run):
    traj = Trajectory()
    out = tiny_run.sample(12, SamplerConfig("ddim", 25), trajectory=traj)
    assert traj.space == "timesteps" and traj.times == spaced_timesteps(1000, 25)
    assert traj.paper_timesteps() == [t + 1 for t in spaced_timesteps(1000, 25)]
    assert len(traj.x_t) == len(traj.x0_hat) == 25 and traj.x_t[0].shape == (12, 2)
    torch.testing.assert_close(traj.x0_hat[-1], out)  # the last DDIM step lands on x0_hat (alpha_bar_prev = 1)


def test_clip_and_guidance_wrappers():
    base = lambda x, t, y: x * 3 + (0.0 if y is None else y[:, None].float())  # noqa: E731
    x, t, y = torch.ones(4, 2), torch.zeros(4, dtype=torch.long), torch.full((4,), 2)
    assert clipped(base)(x, t, None).max().item() == 1.0
    null = 0
    torch.testing.assert_close(guided(base, 1.0, null)(x, t, y), base(x, t, y))
    torch.testing.assert_close(guided(base, 0.0, null)(x, t, y), base(x, t, torch.zeros_like(y)))
    torch.testing.assert_close(guided(base, 3.0, null)(x, t, y), x * 3 + 6.0)


def test_bad_sampler_arguments():
    sch, _, denoise = _oracle(T=10)
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="eta=1.5 is out of range"):
        ddim_sample(denoise, sch, x, [9, 5], eta=1.5)
    with pytest.raises(ValueError, match="strictly decreasing"):
        ddim_sample(denoise, sch, x, [5, 9])
    with pytest.raises(ValueError, match="unknown DDPM variance 'big'"):
        ddpm_sample(denoise, sch, x, [9, 5], noise=lambda: x, variance="big")
    with pytest.raises(ValueError, match="unknown sampler 'plms'"):
        SamplerConfig("plms")
