import math

import pytest
import torch
from torch import Tensor, nn

from diffusion.core.edm import (
    C_NOISE_SCALE,
    EDMPrecond,
    alpha_bar_of_sigma,
    continuous_vp_denoiser,
    edm_loss,
    edm_loss_weight,
    edm_scalings,
    fractional_timestep,
    karras_sigmas,
    logsnr_sigmas,
    schedule_sigma_range,
    to_vp_denoiser,
)
from diffusion.core.schedules import alpha_bar_at, make_schedule
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore.presets import PRESETS, preset
from diffusion.models.model_config import MLPConfig
from diffusion.models.mlp import MLP

SIGMAS = [0.002, 0.05, 0.5, 1.0, 7.3, 80.0]


def _table1(sigma: float, sd: float) -> tuple[float, float, float, float]:
    """EDM Table 1, written out in float64 scalars."""
    return (sd**2 / (sigma**2 + sd**2), sigma * sd / math.sqrt(sigma**2 + sd**2), 1 / math.sqrt(sigma**2 + sd**2),
            math.log(sigma) / 4)


@pytest.mark.parametrize("sd", [0.5, 1.0])
def test_scalings_match_table_1(sd):
    got = edm_scalings(torch.tensor(SIGMAS, dtype=torch.float64), sd)
    for k, sigma in enumerate(SIGMAS):
        for value, expected in zip(got, _table1(sigma, sd)):
            assert value[k].item() == pytest.approx(expected, rel=1e-12)
    c_out = got[1]
    torch.testing.assert_close(edm_loss_weight(torch.tensor(SIGMAS, dtype=torch.float64), sd), 1 / c_out**2)


class _IdealNet(nn.Module):
    """The raw network F that outputs EDM's ideal target (x0 - c_skip x) / c_out, recovering sigma from the
    time input and x from the scaled input with Table 1 written out independently of diffusion.core.edm."""

    def __init__(self, x0: Tensor, sd: float):
        super().__init__()
        self.x0, self.sd = x0, sd

    def forward(self, x_in, t, y):
        sigma = torch.exp(4 * t.double() / C_NOISE_SCALE)
        rows = []
        for i, s in enumerate(sigma.tolist()):
            c_skip, c_out, c_in, _ = _table1(s, self.sd)
            x = x_in[i].double() / c_in
            rows.append((self.x0[i].double() - c_skip * x) / c_out)
        return torch.stack(rows).float()



def test_precond_with_ideal_network_returns_x0():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(len(SIGMAS), 3, 4, 4, generator=g)
    sigma = torch.tensor(SIGMAS)
    x = x0 + sigma[:, None, None, None] * torch.randn(x0.shape, generator=g)
    D = EDMPrecond(_IdealNet(x0, 0.5), sigma_data=0.5)(x, sigma)
    torch.testing.assert_close(D, x0, rtol=0, atol=2e-4)   # float32 rounding of c_out F ~ sigma * 1e-7 * |F|


class _ZeroNet(nn.Module):
    """F = 0, recording the time input it was given."""

    def forward(self, x_in, t, y):
        self.t = t
        return torch.zeros_like(x_in)


def test_edm_loss_is_the_weighted_mse_with_lognormal_sigma():
    """With F = 0, D = c_skip x, and lambda ||D - x0||^2 = ||(x0 - c_skip x) / c_out||^2 (EDM eq. 8)."""
    B, sd = 20_000, 0.7
    x0 = torch.randn(B, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64).float()
    net = _ZeroNet()
    loss = edm_loss(EDMPrecond(net, sd), x0, None, torch.Generator().manual_seed(5), P_mean=-1.2, P_std=1.2)
    g = torch.Generator().manual_seed(5)                    # the documented draw order: ln sigma, then n
    sigma = (torch.randn(B, generator=g) * 1.2 - 1.2).exp()
    x = x0 + sigma[:, None] * torch.randn(x0.shape, generator=g)
    c_skip, c_out, _, _ = edm_scalings(sigma.double(), sd)
    target = (x0.double() - c_skip[:, None] * x.double()) / c_out[:, None]
    torch.testing.assert_close(loss.double(), target.square().mean(1), rtol=1e-4, atol=1e-5)
    log_sigma = 4 * net.t.double() / C_NOISE_SCALE       # what the network saw, back to ln sigma
    assert abs(log_sigma.mean().item() + 1.2) < 4 * 1.2 / math.sqrt(B)
    assert abs(log_sigma.std().item() - 1.2) < 4 * 1.2 / math.sqrt(2 * B)


def test_edm_loss_trains_every_parameter_of_an_mlp():
    net = MLP(MLPConfig(num_classes=3))
    x0, y = torch.randn(16, 2), torch.tensor([0, 1, 2, 3] * 4)
    edm_loss(EDMPrecond(net, 1.0), x0, y, torch.Generator().manual_seed(0)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert EDMPrecond(net).null_label == 3 and dict(EDMPrecond(net).state_dict()).keys() == {
        f"net.{k}" for k in net.state_dict()}


def test_karras_sigmas_eq_5():
    s = karras_sigmas(18, 0.002, 80.0, 7.0)
    assert s.shape == (19,) and s.dtype == torch.float64
    assert s[0].item() == pytest.approx(80.0, rel=1e-12) and s[17].item() == pytest.approx(0.002, rel=1e-12)
    assert s[18].item() == 0.0 and (s[1:] < s[:-1]).all()
    i, n = 5, 18
    expected = (80 ** (1 / 7) + i / (n - 1) * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert s[i].item() == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(karras_sigmas(4, 1.0, 4.0, rho=1.0), torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0],
                                                                                 dtype=torch.float64))
    torch.testing.assert_close(karras_sigmas(1, 0.1, 3.0), torch.tensor([3.0, 0.0], dtype=torch.float64))


def test_logsnr_sigmas_are_geometric():
    s = logsnr_sigmas(5, 0.01, 100.0)
    torch.testing.assert_close(s, torch.tensor([100.0, 10.0, 1.0, 0.1, 0.01, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("call,match", [
    (lambda: karras_sigmas(0), "number of steps n=0"),
    (lambda: karras_sigmas(5, 1.0, 0.5), "sigma_min=1.0, sigma_max=0.5"),
    (lambda: karras_sigmas(5, rho=0), "rho=0 is out of range"),
    (lambda: logsnr_sigmas(5, 0.0, 1.0), "sigma_min=0.0"),
    (lambda: EDMPrecond(nn.Identity(), sigma_data=0), "sigma_data=0"),
    (lambda: preset("EDM 2023"), "unknown preset 'EDM 2023'"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_schedule_sigma_range():
    lo, hi = schedule_sigma_range(make_schedule("linear", 1000))
    assert lo == pytest.approx(math.sqrt(1e-4 / (1 - 1e-4)), rel=1e-6) and hi == 80.0
    assert schedule_sigma_range(make_schedule("linear", 1000), 0.02, 1000.0)[1] == pytest.approx(157.4, rel=1e-3)


def test_fractional_timesteps_interpolate_log_sigma_and_invert():
    """alpha_bar_at reads a discrete schedule between its integers (ln sigma linear, k-diffusion's t_to_sigma);
    fractional_timestep is its inverse, integer on the schedule's own sigmas."""
    sch = make_schedule("linear", 1000)
    t = torch.tensor([0, 1, 10, 500, 999])
    torch.testing.assert_close(alpha_bar_at(sch.alpha_bar, t.double()), sch.alpha_bar.double()[t])
    ab = sch.alpha_bar.double()
    sigmas = ((1 - ab) / ab).sqrt()                        # the schedule's sigmas from its alpha_bar, in float64
    torch.testing.assert_close(fractional_timestep(sigmas[t], sch), t.double())
    a, b = sigmas[1], sigmas[2]
    ab = alpha_bar_at(sch.alpha_bar, torch.tensor([1.5], dtype=torch.float64))
    torch.testing.assert_close(((1 - ab) / ab).sqrt(), (a * b).sqrt()[None], rtol=1e-5, atol=0)  # geometric middle
    frac = torch.tensor([0.25, 3.7, 998.5], dtype=torch.float64)
    sigma = ((1 - alpha_bar_at(sch.alpha_bar, frac)) / alpha_bar_at(sch.alpha_bar, frac)).sqrt()
    torch.testing.assert_close(fractional_timestep(sigma, sch), frac)
    assert fractional_timestep(torch.tensor([1e-6, 1e6]), sch).tolist() == [0, 999]   # clamped to the schedule


def test_vp_and_sigma_adapters_agree_with_the_exact_denoiser():
    sch = make_schedule("cosine", 1000)
    mixture = toy_dataset("8gaussians").mixture
    vp = mixture.denoiser(sch.alpha_bar)
    t = torch.tensor([0, 100, 500, 900, 999, 3])
    sigma = sch.sigma[t]
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0)) * (1 + sigma[:, None])  # VE-space points

    def exact(x, sigma, y):
        ab = alpha_bar_of_sigma(sigma.double())
        return mixture.posterior_mean(x * ab.sqrt()[:, None].float(), ab)

    x_t = x * alpha_bar_of_sigma(sigma.double()).sqrt()[:, None].float()
    torch.testing.assert_close(continuous_vp_denoiser(vp, sch, "x0")(x, sigma, None), exact(x, sigma, None))
    off_grid = sigma * 1.37                                 # between timesteps: exact too, no rounding
    torch.testing.assert_close(continuous_vp_denoiser(vp, sch, "x0")(x, off_grid, None), exact(x, off_grid, None))
    torch.testing.assert_close(to_vp_denoiser(exact, sch)(x_t, t, None), vp(x_t, t, None), rtol=1e-4, atol=1e-4)


def test_presets_match_the_papers():
    ddpm = preset("DDPM 2020")
    sch = make_schedule(ddpm.schedule["name"], ddpm.schedule["timesteps"])
    assert sch.T == 1000 and sch.beta[0].item() == pytest.approx(1e-4) and sch.beta[-1].item() == pytest.approx(0.02)
    assert (ddpm.train["objective"], ddpm.sampler["name"], ddpm.sampler["variance"], ddpm.nfe) == \
        ("eps", "ddpm", "beta", 1000)
    iddpm = preset("iDDPM cosine")
    assert iddpm.paper["timesteps"] == 4000 and iddpm.paper["cosine_s"] == 0.008
    cos = make_schedule(iddpm.schedule["name"], iddpm.schedule["timesteps"])
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2   # noqa: E731, Nichol & Dhariwal eq. 17
    assert cos.alpha_bar[499].item() == pytest.approx(f(500) / f(0), rel=1e-5)
    ddim = preset("DDIM")
    assert (ddim.sampler["eta"], ddim.sampler["steps"], ddim.sampler["spacing"]) == (0.0, 50, "leading")
    edm = preset("EDM")
    assert dict(edm.train) == {"objective": "edm", "sigma_data": 0.5, "P_mean": -1.2, "P_std": 1.2}
    assert {k: edm.sampler[k] for k in ("name", "steps", "sigma_min", "sigma_max", "rho", "S_churn")} == \
        {"name": "heun", "steps": 18, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "S_churn": 0.0}
    assert edm.nfe == 35 and preset("EDM stochastic").nfe == 511
    with pytest.raises(TypeError):
        edm.sampler["steps"] = 5                           # presets are read-only
    assert all(p.reference and p.name == name for name, p in PRESETS.items())


@pytest.mark.parametrize("objective", ["edm", "eps"])
def test_zero_terminal_snr_is_refused_where_it_has_no_meaning(objective):
    """alpha_bar_T = 0: eps-prediction is undefined at t = T, and the EDM denoiser's input x_t / sqrt(alpha_bar_T)
    divides by zero (it made DDIM and DDPM return NaN)."""
    from diffusion.config import RunConfig, ScheduleConfig, TrainConfig
    with pytest.raises(ValueError, match="zero terminal SNR"):
        RunConfig(schedule=ScheduleConfig(zero_terminal_snr=True), train=TrainConfig(objective=objective))
    RunConfig(schedule=ScheduleConfig(zero_terminal_snr=True), train=TrainConfig(objective="v"))   # allowed
