import math

import pytest
import torch
from conftest import N

from diffusion.core.edm import (
    alpha_bar_of_sigma,
    continuous_vp_denoiser,
    karras_sigmas,
    logsnr_sigmas,
    schedule_sigma_range,
)
from diffusion.core.schedules import make_schedule, spaced_timesteps
from diffusion.data.toy_datasets import toy_dataset
from diffusion.metrics.points2d import wasserstein
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.registry import nfe, steps_for_nfe
from diffusion.sampling.sigma import Churn, dpmpp_2m_sample, euler_sample, heun_sample
from diffusion.sampling.vp import SeededNoise, ddim_sample

SCHEDULE = make_schedule("linear", 1000)
MIXTURE = toy_dataset("8gaussians").mixture
VP_ORACLE = MIXTURE.denoiser(SCHEDULE.alpha_bar)


def exact_sigma_denoiser(x, sigma, y):
    """E[x0 | x] for VE x = x0 + sigma n, through the VP oracle at alpha_bar = 1 / (1 + sigma^2)."""
    ab = alpha_bar_of_sigma(sigma.double())
    return MIXTURE.posterior_mean(x * ab.sqrt()[:, None].to(x.dtype), ab)


DENOISERS = {"exact": exact_sigma_denoiser, "vp": continuous_vp_denoiser(VP_ORACLE, SCHEDULE, "x0")}
SIGMA_SAMPLERS = {"euler": euler_sample, "heun": heun_sample, "dpmpp2m": dpmpp_2m_sample}


def sample_sigma(name, denoise, z, sigmas, **kwargs):
    """Sampler `name` from x_T = sigma_max z (EDM Algorithm 2, line 1), as the registry runs it."""
    return SIGMA_SAMPLERS[name](denoise, z * float(sigmas[0]), sigmas, **kwargs)


def _karras(steps):
    return karras_sigmas(steps, *schedule_sigma_range(SCHEDULE))


@pytest.mark.parametrize("kind", DENOISERS)
@pytest.mark.parametrize("name,steps", [("euler", 50), ("heun", 18), ("dpmpp2m", 20)])
def test_exact_denoiser_reproduces_mixture(floor_8gaussians, name, steps, kind):
    ref, floor_mean, floor_std = floor_8gaussians
    noise = SeededNoise(range(N), (2,))
    x = sample_sigma(name, DENOISERS[kind], noise(), _karras(steps), noise=noise)
    assert wasserstein(x, ref) < floor_mean + 4 * floor_std


def test_heun_with_churn_reproduces_mixture(floor_8gaussians):
    ref, floor_mean, floor_std = floor_8gaussians
    noise = SeededNoise(range(N), (2,))
    x = sample_sigma("heun", DENOISERS["vp"], noise(), _karras(32), noise=noise, churn=Churn(S_churn=80.0))
    assert wasserstein(x, ref) < floor_mean + 4 * floor_std


def test_euler_on_schedule_sigmas_is_ddim_path_by_path():
    """EDM sec. 3: DDIM is Euler in sigma with x = x_t / sqrt(alpha_bar); exact on the schedule's own sigmas."""
    ts = spaced_timesteps(1000, 20)
    z = SeededNoise(range(256), (2,))()
    sigmas = torch.cat([SCHEDULE.sigma[ts].double(), torch.zeros(1, dtype=torch.float64)])
    x_T = z * math.sqrt(1 + sigmas[0].item() ** 2)
    x_euler = euler_sample(DENOISERS["vp"], x_T, sigmas)
    torch.testing.assert_close(x_euler, ddim_sample(VP_ORACLE, SCHEDULE, z, ts), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,order", [("euler", 1), ("heun", 2), ("dpmpp2m", 2)])
def test_order_of_convergence_on_a_gaussian(name, order):
    """Data N(0, s^2 I): D = s^2 / (s^2 + sigma^2) x and the ODE solution is x_T sqrt(s^2 + sigma^2) / sqrt(s^2 +
    sigma_max^2). The error must shrink by ~2^order each time the steps double."""
    s2 = 0.49
    denoise = lambda x, sigma, y: (s2 / (s2 + sigma.double() ** 2))[:, None].to(x.dtype) * x  # noqa: E731
    x_T = 80 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = x_T * math.sqrt(s2) / math.sqrt(s2 + 80**2)
    errors = [(SIGMA_SAMPLERS[name](denoise, x_T, karras_sigmas(n)) - exact).norm(dim=1).mean().item()
              for n in (32, 64, 128)]
    for coarse, fine in zip(errors, errors[1:]):
        assert abs(math.log2(coarse / fine) - order) < 0.2


def test_heun_converges_on_the_mixture():
    z = SeededNoise(range(300), (2,))()
    reference = heun_sample(exact_sigma_denoiser, 80 * z, karras_sigmas(256))
    errors = [(heun_sample(exact_sigma_denoiser, 80 * z, karras_sigmas(n)) - reference).norm(dim=1).mean().item()
              for n in (8, 16, 32, 64)]
    assert all(fine < coarse for coarse, fine in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.01 * errors[0]


def test_dpmpp_20_matches_ddim_200(floor_8gaussians):
    """Same start (DDIM's x_T = z is VE sqrt(1 + sigma_T^2) z), same ODE: DPM-Solver++(2M) on its logSNR grid
    with 20 evaluations lands each path where DDIM's 200 do, better than DDIM with 20; W1 agrees within the floor."""
    ref, _, floor_std = floor_8gaussians
    z = SeededNoise(range(N), (2,))()
    sigma_min, sigma_max = SCHEDULE.sigma[0].item(), SCHEDULE.sigma[-1].item()
    x_dpm = dpmpp_2m_sample(exact_sigma_denoiser, z * math.sqrt(1 + sigma_max**2),
                            logsnr_sigmas(20, sigma_min, sigma_max))
    x_200 = ddim_sample(VP_ORACLE, SCHEDULE, z, spaced_timesteps(1000, 200))
    x_20 = ddim_sample(VP_ORACLE, SCHEDULE, z, spaced_timesteps(1000, 20))
    component_std = MIXTURE.covs[0, 0, 0].sqrt().item()
    distance = (x_dpm - x_200).norm(dim=1)
    assert distance.max() < component_std / 2                        # no path changed mode
    assert distance.mean() < (x_20 - x_200).norm(dim=1).mean()
    assert abs(wasserstein(x_dpm, ref) - wasserstein(x_200, ref)) < 2 * floor_std


@pytest.mark.parametrize("sampler", [euler_sample, heun_sample])
def test_churn_zero_is_deterministic_and_churn_is_stochastic(sampler):
    sigmas, x_T = _karras(10), 80 * SeededNoise(range(64), (2,))()
    run = lambda seeds, churn: sampler(DENOISERS["exact"], x_T, sigmas, noise=SeededNoise(seeds, (2,)),  # noqa: E731
                                       churn=churn)
    deterministic = sampler(DENOISERS["exact"], x_T, sigmas)
    torch.testing.assert_close(run(range(64), Churn()), deterministic, rtol=0, atol=0)
    torch.testing.assert_close(run(range(100, 164), Churn()), deterministic, rtol=0, atol=0)
    outside = Churn(S_churn=40.0, S_min=100.0, S_max=200.0)        # no sigma of the grid lies in [S_min, S_max]
    torch.testing.assert_close(run(range(64), outside), deterministic, rtol=0, atol=0)
    churn = Churn(S_churn=40.0, S_min=0.05, S_max=50.0, S_noise=1.003)
    torch.testing.assert_close(run(range(64), churn), run(range(64), churn), rtol=0, atol=0)
    assert (run(range(64), churn) - run(range(100, 164), churn)).norm(dim=1).mean() > 0.1


def test_churn_gamma():
    churn = Churn(S_churn=2.0, S_min=0.1, S_max=10.0)
    assert churn.gamma(1.0, 10) == pytest.approx(0.2)
    assert churn.gamma(1.0, 2) == pytest.approx(math.sqrt(2) - 1)    # capped: at most doubles the variance
    assert churn.gamma(0.05, 10) == 0.0 and churn.gamma(20.0, 10) == 0.0


def test_churn_raises_the_noise_level_to_sigma_hat():
    """Line 5 of EDM Algorithm 2: x ~ N(0, sigma^2) (data at 0) becomes x_hat ~ N(0, sigma_hat^2) with S_noise = 1."""
    n, sigma = 100_000, 2.0
    noise = SeededNoise([0], (n,))
    x_hat, sigma_hat = Churn(S_churn=2.0).apply(sigma * noise(), sigma, 10, noise)
    assert sigma_hat == pytest.approx(2.4)
    assert abs(x_hat.var().item() / sigma_hat**2 - 1) < 4 * math.sqrt(2 / n)


def test_dpmpp_2m_second_step_follows_algorithm_2():
    """A denoiser that ignores x (x0_hat = ln sigma) makes one 2M step computable by hand: grid 8, 2, 1, so
    h_prev = ln 4, h = ln 2, r = h_prev / h = 2 and D = (1 + 1/(2r)) x0_hat(2) - 1/(2r) x0_hat(8)."""
    seen = {}
    dpmpp_2m_sample(lambda x, sigma, y: torch.zeros_like(x) + sigma.log()[:, None], torch.full((1, 1), 3.0),
                    torch.tensor([8.0, 2.0, 1.0, 0.0]), callback=lambda i, sigma, x, x0: seen.update({i: x.item()}))
    x1 = 2 / 8 * 3.0 + (1 - 2 / 8) * math.log(8)                       # first step: first order (DDIM)
    r = math.log(4) / math.log(2)
    D = (1 + 1 / (2 * r)) * math.log(2) - 1 / (2 * r) * math.log(8)
    assert seen[1] == pytest.approx(x1, rel=1e-6) and seen[2] == pytest.approx(1 / 2 * x1 + (1 - 1 / 2) * D, rel=1e-6)


@pytest.mark.parametrize("name", SIGMA_SAMPLERS)
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_nfe_counts_denoiser_calls(name, steps):
    calls = []

    def counting(x, sigma, y):
        calls.append(sigma[0].item())
        return exact_sigma_denoiser(x, sigma, y)

    seen = []
    sample_sigma(name, counting, SeededNoise(range(8), (2,))(), _karras(steps),
                 callback=lambda i, sigma, x, x0: seen.append((i, sigma)))
    assert len(calls) == nfe(name, steps)
    assert seen == [(i, s) for i, s in enumerate(_karras(steps)[:-1].tolist())]   # one callback a step
    assert steps_for_nfe(name, nfe(name, steps)) == steps


def test_nfe_of_named_samplers():
    assert nfe("heun", 18) == 35 and nfe("euler", 18) == 18 and nfe("dpmpp2m", 20) == 20 and nfe("ddim", 50) == 50
    assert steps_for_nfe("heun", 20) == 10 and nfe("heun", 10) == 19


@pytest.mark.parametrize("call,match", [
    (lambda: SamplerConfig("dpmpp2m", S_churn=1.0), "S_churn=1.0 does not apply to 'dpmpp2m'"),
    (lambda: heun_sample(DENOISERS["exact"], torch.zeros(2, 2), _karras(3), churn=Churn(1.0)), "pass noise"),
    (lambda: euler_sample(DENOISERS["exact"], torch.zeros(2, 2), torch.tensor([1.0, 2.0, 0.0])),
     "strictly decreasing"),
    (lambda: euler_sample(DENOISERS["exact"], torch.zeros(2, 2), torch.tensor([2.0, 1.0])), "end with 0"),
    (lambda: dpmpp_2m_sample(DENOISERS["exact"], torch.zeros(2, 2), torch.tensor([0.0])), "at least 2"),
    (lambda: Churn(S_churn=-1.0), "S_churn=-1.0"),
    (lambda: Churn(S_min=2.0, S_max=1.0), "S_min=2.0, S_max=1.0"),
    (lambda: nfe("plms", 10), "unknown sampler 'plms'"),
    (lambda: nfe("heun", 0), "number of steps 0"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
