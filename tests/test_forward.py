import pytest
import torch

from diffusion.core.forward import (
    OBJECTIVES,
    at,
    eps_to_x0,
    posterior,
    predict_x0,
    q_sample,
    snr_weight,
    target,
    v_target,
    v_to_x0,
    x0_to_eps,
)
from diffusion.core.schedules import make_schedule

D64 = torch.float64


def test_q_sample_marginal_by_monte_carlo():
    s, n = make_schedule("linear", 1000), 200_000
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([1.5, -0.5])
    for t in (0, 100, 500, 999):
        ab = s.alpha_bar[t]
        x_t = q_sample(x0.expand(n, 2), ab, torch.randn(n, 2, generator=g))
        se_mean, se_var = ((1 - ab) / n).sqrt(), (1 - ab) * (2 / n) ** 0.5
        assert torch.allclose(x_t.mean(0), ab.sqrt() * x0, atol=5 * se_mean.item())
        assert torch.allclose(x_t.var(0), (1 - ab).expand(2), atol=5 * se_var.item())


@pytest.mark.parametrize("t,s_", [(1, 0), (10, 9), (500, 499), (999, 998), (999, 500), (300, 7)])
def test_posterior_matches_gaussian_conditioning(t, s_):
    """q(x_s | x_t, x0) by conditioning the joint Gaussian of (x_s, x_t) given x0, in float64."""
    sch = make_schedule("cosine", 1000)
    ab_t, ab_s = sch.alpha_bar.double()[t], sch.alpha_bar.double()[s_]
    a = ab_t / ab_s                                    # x_t = sqrt(a) x_s + sqrt(1 - a) e
    x0, x_t = torch.tensor([0.7, -1.2], dtype=D64), torch.tensor([0.1, 2.0], dtype=D64)
    cov_st, var_t, var_s = a.sqrt() * (1 - ab_s), 1 - ab_t, 1 - ab_s
    mean_ref = ab_s.sqrt() * x0 + cov_st / var_t * (x_t - ab_t.sqrt() * x0)
    var_ref = var_s - cov_st**2 / var_t
    mean, var = posterior(x0, x_t, ab_t, ab_s)
    torch.testing.assert_close(mean, mean_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(var, var_ref, rtol=1e-12, atol=1e-14)


def test_posterior_mean_is_ho_eq_11():
    """mu = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps): not the design document's formula."""
    sch = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(1)
    x_t, eps = torch.randn(8, 2, generator=g, dtype=D64), torch.randn(8, 2, generator=g, dtype=D64)
    for t in (1, 50, 999):
        ab, ab_prev = sch.alpha_bar.double()[t], sch.alpha_bar.double()[t - 1]
        alpha, beta = sch.alpha.double()[t], sch.beta.double()[t]
        ho = (x_t - beta / (1 - ab).sqrt() * eps) / alpha.sqrt()
        mean, var = posterior(eps_to_x0(x_t, eps, ab), x_t, ab, ab_prev)
        torch.testing.assert_close(mean, ho, rtol=1e-4, atol=1e-6)  # beta float32 vs alpha_bar ratio
        torch.testing.assert_close(var, sch.beta_tilde.double()[t], rtol=1e-4, atol=1e-10)


def test_conversions_round_trip():
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(16, 3, generator=g, dtype=D64), torch.randn(16, 3, generator=g, dtype=D64)
    ab = torch.rand(16, 1, generator=g, dtype=D64) * 0.98 + 0.01
    x_t = q_sample(x0, ab, eps)
    torch.testing.assert_close(eps_to_x0(x_t, eps, ab), x0)
    torch.testing.assert_close(x0_to_eps(x_t, x0, ab), eps)
    torch.testing.assert_close(v_to_x0(x_t, v_target(x0, eps, ab), ab), x0)
    for objective in OBJECTIVES:
        torch.testing.assert_close(predict_x0(objective, x_t, target(objective, x0, eps, ab), ab), x0)
    with pytest.raises(ValueError, match="unknown objective 'score'"):
        target("score", x0, eps, ab)


def test_at_broadcasts_per_example():
    values, x = torch.arange(10.0), torch.zeros(3, 1, 4, 4)
    out = at(values, torch.tensor([0, 5, 9]), x)
    assert out.shape == (3, 1, 1, 1) and out.flatten().tolist() == [0.0, 5.0, 9.0]


def test_min_snr_weights():
    snr = torch.tensor([0.1, 1.0, 5.0, 100.0])
    torch.testing.assert_close(snr_weight("eps", snr, 5.0), torch.tensor([1.0, 1.0, 1.0, 0.05]))
    torch.testing.assert_close(snr_weight("x0", snr, 5.0), torch.tensor([0.1, 1.0, 5.0, 5.0]))
    torch.testing.assert_close(snr_weight("v", snr, 5.0), torch.tensor([0.1 / 1.1, 0.5, 5 / 6, 5 / 101]))
