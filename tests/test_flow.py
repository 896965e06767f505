"""Flow matching: the path, its target and training times; the exact velocity of Gaussian mixtures against Monte Carlo
and finite differences; the conversions to the VP and EDM spaces; the flow samplers against their equivalents and
their order; the objective in the trainer (one step by hand, moons and real MNIST zeros end to end, labels and
guidance); its settings validated."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_hand_step_is_the_library_step, oracle_flow_run, oracle_run

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.core.flow_matching import (
    FLOW_TIME_SCALE,
    flow_from_sigma,
    flow_path,
    sample_time,
    sigma_from_flow,
    velocity_target,
    vp_from_flow,
    vp_point,
)
from diffusion.core.oracles import GaussianMixture, flow_denoiser, flow_posterior, flow_velocity
from diffusion.core.schedules import make_schedule, spaced_timesteps
from diffusion.data import load_data
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore.flow_experiments import unit_noise
from diffusion.metrics.evaluation import measure_samples
from diffusion.metrics.protocol import points_protocol
from diffusion.models.model_config import MLPConfig, unet_preset
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.flow_samplers import flow_euler_sample, flow_midpoint_sample
from diffusion.sampling.sigma import euler_sample
from diffusion.training.trainer import Trainer

RING = toy_dataset("8gaussians").mixture


def test_the_path_joins_data_to_noise_with_the_target_as_its_velocity():
    g = torch.Generator().manual_seed(0)
    x0, eps, t = torch.randn(64, 2, generator=g, dtype=torch.float64), torch.randn(64, 2, generator=g,
                                                                                  dtype=torch.float64), torch.rand(64)
    torch.testing.assert_close(flow_path(x0, eps, torch.zeros(64)), x0)
    torch.testing.assert_close(flow_path(x0, eps, torch.ones(64)), eps)
    h = 1e-6
    slope = (flow_path(x0, eps, t.double() + h) - flow_path(x0, eps, t.double() - h)) / (2 * h)
    torch.testing.assert_close(slope, velocity_target(x0, eps))


def test_training_times_are_uniform_or_logit_normal():
    """SD3's logit-normal: logit(t) ~ N(m, s^2) (Esser et al. 2024, eq. 19); moments within 4 standard errors."""
    n = 40_000
    u = sample_time(n, torch.Generator().manual_seed(0), "cpu")
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean().item() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    t = sample_time(n, torch.Generator().manual_seed(1), "cpu", "logit_normal", mean=0.5, std=0.8).double()
    logit = (t / (1 - t)).log()
    assert abs(logit.mean().item() - 0.5) < 4 * 0.8 / math.sqrt(n)
    assert abs(logit.std().item() - 0.8) < 4 * 0.8 / math.sqrt(2 * n)
    with pytest.raises(ValueError, match="unknown time sampling 'beta'; allowed: uniform, logit_normal"):
        sample_time(4, torch.Generator(), "cpu", "beta")


@pytest.mark.parametrize("t", [0.2, 0.5, 0.85])
def test_exact_posterior_matches_monte_carlo(t):
    """E[x0 | x_t] by self-normalised importance sampling over 400k prior draws, within 4 standard errors; then
    E[eps | x_t] = (x_t - (1 - t) E[x0 | x_t]) / t."""
    g = torch.Generator().manual_seed(3)
    eps = torch.randn(3, 2, generator=g, dtype=torch.float64)
    x_t = flow_path(RING.sample(3, g).double(), eps, torch.full((3,), t))
    x0 = RING.sample(400_000, g).double()
    log_w = -((x_t[:, None] - (1 - t) * x0[None]).square().sum(-1)) / (2 * t * t)             # (3, M)
    w = torch.softmax(log_w, dim=1)
    mc = w @ x0                                                                                  # (3, 2)
    se = torch.einsum("bm,bmd->bd", w.square(), (x0[None] - mc[:, None]).square()).sqrt()  # delta method
    exact_x0, exact_eps = flow_posterior(RING, x_t, torch.full((3,), t))
    assert ((exact_x0 - mc).abs() <= 4 * se + 1e-6).all(), (exact_x0, mc, se)
    torch.testing.assert_close(exact_eps, (x_t - (1 - t) * exact_x0) / t)


def _log_p_t(x: torch.Tensor, t: float) -> torch.Tensor:
    """log p_t(x) of the flow marginal of RING in float64: the VP mixture at x / c, minus D log c."""
    c, ab = vp_point(torch.tensor([t], dtype=torch.float64))
    x_vp = x / c
    return torch.logsumexp(RING._component_terms(x_vp, ab.expand(len(x)))[2], dim=1) - 2 * c.log()


def test_exact_velocity_solves_the_continuity_equation_and_gives_the_score():
    """Finite differences of the exact log density of x_t: d/dt log p + div v + v . grad log p = 0 (the transport
    equation the probability-flow ODE rests on), and E[eps | x_t] = -t grad log p_t (Tweedie)."""
    x = torch.tensor([[0.3, -0.8], [1.1, 0.2], [-0.5, -0.4]], dtype=torch.float64)
    h = 1e-5
    for t in (0.15, 0.5, 0.9):
        grad = torch.stack([(_log_p_t(x + h * e, t) - _log_p_t(x - h * e, t)) / (2 * h)
                            for e in torch.eye(2, dtype=torch.float64)], dim=1)
        dt = (_log_p_t(x, t + h) - _log_p_t(x, t - h)) / (2 * h)
        xr = x.clone().requires_grad_(True)
        v = flow_velocity(RING)(xr, torch.full((3,), t), None)
        div = sum(torch.autograd.grad(v[:, i].sum(), xr, retain_graph=True)[0][:, i] for i in range(2))
        torch.testing.assert_close(dt + div + (v * grad).sum(1), torch.zeros(3, dtype=torch.float64), atol=1e-6,
                                   rtol=0)
        torch.testing.assert_close(flow_posterior(RING, x, torch.full((3,), t))[1], -t * grad, atol=1e-7, rtol=1e-6)


def test_velocity_is_finite_at_both_ends():
    x = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(flow_velocity(RING)(x, torch.zeros(5), None), -x)        # E[eps | x0] = 0
    torch.testing.assert_close(flow_velocity(RING)(x, torch.ones(5), None), x - RING.mean().expand(5, 2))


@pytest.mark.parametrize("zero_terminal_snr", [False, True])
def test_a_flow_denoiser_on_vp_timesteps_is_the_exact_vp_denoiser(zero_terminal_snr):
    """vp_from_flow: x_t = x_VP / (a + b) at t = b / (a + b), exact at every timestep, alpha_bar_T = 0 included."""
    schedule = make_schedule("linear", 1000, zero_terminal_snr)
    t = torch.tensor([0, 10, 500, 998, 999])
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    got = vp_from_flow(flow_denoiser(RING), schedule.alpha_bar)(x, t, None)
    torch.testing.assert_close(got, RING.posterior_mean(x, schedule.alpha_bar.double()[t]), atol=1e-5, rtol=1e-5)


def test_sigma_and_flow_denoisers_convert_both_ways():
    sigma_d = sigma_from_flow(flow_denoiser(RING))
    x, t = torch.randn(6, 2, dtype=torch.float64), torch.rand(6, dtype=torch.float64) * 0.98
    torch.testing.assert_close(flow_from_sigma(sigma_d)(x, t, None), flow_denoiser(RING)(x, t, None))


def test_flow_euler_is_euler_in_sigma_on_the_matching_grid():
    """Euler is invariant to the rescaling x_VE = x_t / (1 - t): the same map as EDM's Euler at sigma = t / (1 - t)."""
    times = torch.tensor([0.95, 0.7, 0.4, 0.2, 0.05, 0.0], dtype=torch.float64)
    x_T = 0.95 * torch.randn(100, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    flow = flow_euler_sample(flow_denoiser(RING), x_T, times)
    sigma = euler_sample(sigma_from_flow(flow_denoiser(RING)), x_T / 0.05, times / (1 - times))
    torch.testing.assert_close(flow, sigma)


def test_ddim_on_a_flow_run_is_flow_euler_at_the_timesteps_flow_times():
    """ddim/ddpm on a flow run go through the exact VP adapter: DDIM is then Euler at t = b / (a + b)."""
    run = oracle_flow_run("8gaussians")
    x = run.sample(50, SamplerConfig("ddim", steps=8), seed=4)
    ab = run.schedule.alpha_bar.double()[spaced_timesteps(1000, 8)]
    a, b = ab.sqrt(), (1 - ab).sqrt()
    times = torch.cat([b / (a + b), torch.zeros(1, dtype=torch.float64)])
    z = unit_noise(run, 50, seed=4)                                  # the x_T of run.sample's noise bank
    expected = flow_euler_sample(run.flow_denoiser(SamplerConfig("flow_euler")), z / float(a[0] + b[0]), times)
    torch.testing.assert_close(x, expected, atol=1e-4, rtol=1e-4)


def test_midpoint_is_second_order_and_euler_first():
    """Against a 400-step midpoint solution from the same noises (exact velocity of a correlated Gaussian):
    doubling the steps divides Euler's error by ~2 and the midpoint's by ~4."""
    run = oracle_flow_run("gaussian")
    sample = lambda name, steps: run.sample(200, SamplerConfig(name, steps=steps), seed=0).double()  # noqa: E731
    truth = sample("flow_midpoint", 400)
    error = lambda name, steps: (sample(name, steps) - truth).norm(dim=1).mean().item()  # noqa: E731
    euler = error("flow_euler", 10) / error("flow_euler", 20)
    midpoint = error("flow_midpoint", 10) / error("flow_midpoint", 20)
    assert 1.6 < euler < 2.6 and midpoint > 3.2, (euler, midpoint)   # a Gaussian's field lets the midpoint beat 4
    assert error("flow_midpoint", 10) < 0.2 * error("flow_euler", 20)    # at equal NFE


def test_flow_samplers_refuse_a_bad_grid():
    with pytest.raises(ValueError, match="flow times must be strictly decreasing within"):
        flow_midpoint_sample(flow_denoiser(RING), torch.zeros(2, 2), torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="flow times"):
        flow_euler_sample(flow_denoiser(RING), torch.zeros(2, 2), torch.tensor([1.5, 0.0]))


def test_one_flow_step_equals_hand_written_step():
    """Same batch, t and eps from the same generator; F.mse_loss(net(x_t, 1000 t), eps - x0).backward(); AdamW."""
    cfg = RunConfig(train=TrainConfig(warmup_steps=0, grad_clip=0.0, batch_size=32, lr=1e-2, objective="flow"))
    trainer = Trainer(cfg, load_data(DataConfig("moons", n=100)).x)
    net, g = copy.deepcopy(trainer.model), torch.Generator().manual_seed(cfg.train.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.0)
    idx = torch.randint(0, 100, (32,), generator=g)
    t = torch.rand(32, generator=g)
    eps = torch.randn(32, 2, generator=g)
    x0 = trainer.x[idx]
    loss = F.mse_loss(net((1 - t)[:, None] * x0 + t[:, None] * eps, FLOW_TIME_SCALE * t), eps - x0)
    assert_hand_step_is_the_library_step(trainer, net, opt, loss)


def test_coupled_noise_is_the_reflow_pairs_noise():
    """With coupled noise (reflow), the step regresses onto z[idx] - x[idx], not onto fresh noise."""
    x = load_data(DataConfig("moons", n=64)).x
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(5))
    cfg = RunConfig(train=TrainConfig(warmup_steps=0, batch_size=16, objective="flow"))
    trainer = Trainer(cfg, x, noise=z)
    g = torch.Generator().manual_seed(cfg.train.seed)
    idx, t = torch.randint(0, 64, (16,), generator=g), torch.rand(16, generator=g)
    x_t = (1 - t)[:, None] * x[idx] + t[:, None] * z[idx]
    with torch.no_grad():
        expected = F.mse_loss(trainer.model(x_t, FLOW_TIME_SCALE * t), z[idx] - x[idx]).item()
    assert trainer.train_step()[0] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="coupled noise"):
        Trainer(RunConfig(), x, noise=z)


def test_flow_trains_on_moons_end_to_end():
    """The loss ends well below 2 per dimension, that of the best prediction ignoring x_t (v = 0: E|eps - x0|^2 / D
    = 1 + 1 on standardised data; flow matching's own floor, the conditional variance, is far above 0), and the
    samples beat a fitted Gaussian."""
    x = load_data(DataConfig("moons", n=20_000)).x
    trainer = Trainer(RunConfig(train=TrainConfig(steps=800, objective="flow")), x)
    assert trainer.run().reason == "steps"
    loss = [row["loss"] for row in trainer.history]
    assert sum(loss[-200:]) / 200 < 0.75 * 2.0
    samples = trainer.as_run().sample(1000, SamplerConfig("flow_midpoint", 10))
    gaussian = torch.distributions.MultivariateNormal(x.mean(0), torch.cov(x.T)).sample((1000,))
    w1_model, w1_gaussian = w1_of(samples), w1_of(gaussian)
    assert w1_model < 0.5 * w1_gaussian, (w1_model, w1_gaussian)


def test_a_flow_unet_trains_on_real_mnist_zeros():
    data_cfg = DataConfig("mnist", image_size=16, classes=(0,))
    config = RunConfig(data=data_cfg, model=unet_preset("tiny"),
                       train=TrainConfig(steps=150, batch_size=32, lr=2e-3, warmup_steps=20, objective="flow"))
    trainer = Trainer(config, load_data(data_cfg).x)
    trainer.run()
    loss = [row["loss"] for row in trainer.history]
    assert len(loss) == 150 and all(math.isfinite(v) for v in loss)
    assert sum(loss[-30:]) < 0.5 * sum(loss[:30])
    images = trainer.as_run().sample(4, SamplerConfig("flow_euler", 5))
    assert images.shape == (4, 1, 16, 16) and torch.isfinite(images).all()


def test_classifier_free_guidance_acts_on_the_flow_velocity():
    """A conditional flow MLP: the guided x0_hat is uncond + w (cond - uncond), i.e. the velocity is guided alike
    (x0_hat = x_t - t v is affine in v); labels are dropped in training as for diffusion."""
    config = RunConfig(model=MLPConfig(num_classes=3), train=TrainConfig(steps=5, objective="flow"))
    trainer = Trainer(config, torch.randn(64, 2), torch.randint(0, 3, (64,)))
    trainer.run()
    run = trainer.as_run()
    x, t, y = torch.randn(8, 2), torch.full((8,), 0.4), torch.randint(0, 3, (8,))
    with torch.no_grad():
        v = lambda labels: run.net(x, FLOW_TIME_SCALE * t, labels)  # noqa: E731
        guided_v = v(torch.full_like(y, 3)) + 2.5 * (v(y) - v(torch.full_like(y, 3)))
        got = run.flow_denoiser(SamplerConfig("flow_euler", guidance=2.5, clip=False))(x, t, y)   # the raw network
    torch.testing.assert_close(got, x - 0.4 * guided_v)
    assert run.sample(6, SamplerConfig("flow_midpoint", 3, guidance=2.0), y=y[:6]).shape == (6, 2)


def test_exact_flow_oracle_and_exact_diffusion_oracle_sample_the_same_law():
    """The two oracle runs of conftest are one law: from the same noises, flow_euler on each lands close."""
    flow, vp = oracle_flow_run("gaussian"), oracle_run("gaussian")
    a = flow.sample(300, SamplerConfig("flow_midpoint", 20), seed=2)
    b = vp.sample(300, SamplerConfig("flow_midpoint", 20), seed=2)
    assert (a - b).norm(dim=1).mean() < 0.05   # the diffusion run starts at t_max = 0.988, not 1


@pytest.mark.parametrize("kwargs,match", [
    ({"objective": "rectified"}, "unknown objective 'rectified'"),
    ({"objective": "flow", "time_sampling": "cosine"},
     "unknown time_sampling 'cosine'; allowed: uniform, logit_normal"),
    ({"objective": "flow", "time_sampling": "logit_normal", "logit_std": 0.0}, "logit_std=0.0 is out of range"),
    ({"objective": "flow", "time_sampling": "logit_normal", "logit_mean": math.nan}, "logit_mean=nan"),
    ({"objective": "flow", "weighting": "min_snr"}, "weighting 'min_snr' does not apply to the flow objective"),
    ({"objective": "eps", "time_sampling": "logit_normal"}, "apply to the flow objective only, not 'eps'"),
    ({"objective": "flow", "logit_mean": 1.0}, "shape time_sampling 'logit_normal' only"),
])
def test_flow_settings_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_a_flow_config_round_trips_and_old_configs_load():
    config = RunConfig(train=TrainConfig(objective="flow", time_sampling="logit_normal", logit_mean=-0.5))
    assert RunConfig.from_dict(config.to_dict()) == config
    old = RunConfig().to_dict()
    for name in ("time_sampling", "logit_mean", "logit_std"):
        del old["train"][name]
    assert RunConfig.from_dict(old) == RunConfig()


def test_a_point_mass_mixture_has_straight_exact_paths():
    """Sanity of the oracle: for (nearly) one point, E[eps - x0 | x_t] = (x_t - m) / t, the straight line to m."""
    point = GaussianMixture.isotropic(torch.tensor([[0.7, -0.2]]), 1e-4)
    x, t = torch.randn(5, 2, dtype=torch.float64), torch.full((5,), 0.6)
    torch.testing.assert_close(flow_velocity(point)(x, t, None), (x - point.means) / 0.6, atol=1e-6, rtol=1e-6)


def w1_of(samples) -> float:
    """W1 of 1,000 moons samples under the 2D measurement protocol."""
    return measure_samples(samples, points_protocol(len(samples)), DataConfig("moons")).metrics["w1"].value
