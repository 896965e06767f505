import math

import numpy as np
import pytest
import torch

from diffusion.core.schedules import SCHEDULES, make_schedule, spaced_timesteps


def test_linear_matches_ddpm_paper():
    s = make_schedule("linear", 1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    assert s.beta[0].item() == pytest.approx(1e-4, rel=1e-6)
    assert s.beta[-1].item() == pytest.approx(0.02, rel=1e-6)
    np.testing.assert_allclose(s.alpha_bar.numpy(), np.cumprod(1 - betas), rtol=1e-5)
    assert s.alpha_bar[-1].item() == pytest.approx(4.036e-5, rel=1e-3)  # x_T is N(0, I) up to ~6e-3 in mean scale


@pytest.mark.parametrize("T", [2, 10, 50, 250, 1000, 4000])
def test_scaled_linear_keeps_alpha_bar_T_near_zero(T):
    s = make_schedule("linear", T)
    assert s.beta[0].item() == pytest.approx(min(1e-4 * 1000 / T, 0.999), rel=1e-5)
    assert s.alpha_bar[-1].item() < 1e-3
    assert s.beta.max().item() <= 0.999 + 1e-7


def test_unscaled_linear_with_few_steps_leaves_signal():
    s = make_schedule("linear_unscaled", 50)
    expected = np.prod(1 - np.linspace(1e-4, 0.02, 50))
    assert s.alpha_bar[-1].item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.5


def test_cosine_matches_nichol_dhariwal():
    T, s_ = 1000, 0.008
    s = make_schedule("cosine", T)
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    expected = np.array([f(t) / f(0) for t in range(1, T + 1)])
    betas = np.minimum(1 - expected / np.concatenate([[1.0], expected[:-1]]), 0.999)
    np.testing.assert_allclose(s.beta.numpy(), betas, rtol=1e-5, atol=1e-8)
    assert s.beta[-1].item() == pytest.approx(0.999)


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("T", [2, 37, 1000])
def test_derived_quantities(name, T):
    s = make_schedule(name, T)
    b = s.beta.double()
    ab = torch.cumprod(1 - b, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    for v in (s.beta, s.alpha, s.alpha_bar, s.beta_tilde, s.snr, s.sigma):
        assert v.dtype == torch.float32 and v.shape == (T,)
    torch.testing.assert_close(s.alpha_bar.double(), ab, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(s.alpha.double(), 1 - b, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(s.beta_tilde.double(), (1 - ab_prev) / (1 - ab) * b, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(s.snr.double(), ab / (1 - ab), rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(s.sigma.double(), ((1 - ab) / ab).sqrt(), rtol=1e-4, atol=1e-6)
    assert s.beta_tilde[0].item() == 0.0
    assert bool((s.beta_tilde <= s.beta + 1e-7).all())
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())


def test_zero_terminal_snr():
    plain, z = make_schedule("linear", 1000), make_schedule("linear", 1000, zero_terminal_snr=True)
    assert z.alpha_bar[-1].item() == 0.0 and z.snr[-1].item() == 0.0
    assert z.alpha_bar[0].item() == pytest.approx(plain.alpha_bar[0].item(), rel=1e-6)
    assert bool((z.alpha_bar[1:] < z.alpha_bar[:-1]).all())


@pytest.mark.parametrize("bad", [1, 4001, 0, 2.5])
def test_bad_T(bad):
    with pytest.raises(ValueError, match=r"timesteps T=.* allowed: integers from 2 to 4000"):
        make_schedule("linear", bad)


def test_bad_name():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'; allowed: linear"):
        make_schedule("quadratic", 100)


def test_spacings():
    assert spaced_timesteps(1000, 4, "trailing") == [999, 749, 499, 249]
    assert spaced_timesteps(1000, 4, "linspace") == [999, 666, 333, 0]
    assert spaced_timesteps(1000, 4, "leading") == [750, 500, 250, 0]
    for spacing in ("trailing", "linspace", "leading"):
        assert spaced_timesteps(10, 10, spacing) == list(range(9, -1, -1))
        for T, n in [(1000, 50), (1000, 3), (37, 7), (4000, 1000)]:
            ts = spaced_timesteps(T, n, spacing)
            assert len(ts) == n and all(a > b for a, b in zip(ts, ts[1:])) and 0 <= ts[-1] and ts[0] < T
    with pytest.raises(ValueError, match="allowed: 1 to T=10"):
        spaced_timesteps(10, 11)
    with pytest.raises(ValueError, match="unknown timestep spacing 'even'"):
        spaced_timesteps(10, 5, "even")
