import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_hand_step_is_the_library_step

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.metrics.evaluation import measure_samples
from diffusion.metrics.protocol import points_protocol
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.trainer import Trainer


def _moons(n=5000):
    return load_data(DataConfig("moons", n=n)).x


def test_one_step_equals_hand_written_step():
    """Same batch, t and eps from the same generator; F.mse_loss(...).backward(); AdamW; all by hand."""
    cfg = RunConfig(train=TrainConfig(warmup_steps=0, grad_clip=0.0, batch_size=32, lr=1e-2))
    trainer = Trainer(cfg, _moons(100))
    net, g = copy.deepcopy(trainer.model), torch.Generator().manual_seed(cfg.train.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.0)
    idx = torch.randint(0, 100, (32,), generator=g)
    t = torch.randint(0, 1000, (32,), generator=g)
    eps = torch.randn(32, 2, generator=g)
    ab = trainer.schedule.alpha_bar[t][:, None]
    x_t = ab.sqrt() * trainer.x[idx] + (1 - ab).sqrt() * eps
    loss = F.mse_loss(net(x_t, t), eps)
    assert_hand_step_is_the_library_step(trainer, net, opt, loss)


def test_short_training_on_moons_beats_a_fitted_gaussian():
    x = _moons(20_000)
    trainer = Trainer(RunConfig(train=TrainConfig(steps=3000)), x)
    assert trainer.run().reason == "steps"
    samples = trainer.as_run().sample(1000, SamplerConfig("ddim", 50))
    mean, cov = x.mean(0), torch.cov(x.T)
    gaussian = torch.distributions.MultivariateNormal(mean, cov).sample((1000,))
    model, fitted = (measure_samples(x, points_protocol(1000), DataConfig("moons")) for x in (samples, gaussian))
    assert model.metrics["w1"].high < fitted.metrics["w1"].low                       # apart, with their intervals
    assert model.metrics["w1"].value < 0.5 * fitted.metrics["w1"].value, (model.metrics, fitted.metrics)


def test_training_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = Trainer(RunConfig(train=TrainConfig(steps=20)), _moons(500)), Trainer(RunConfig(), _moons(500))
    a.run(), b.run(steps=20)
    assert torch.equal(torch.get_rng_state(), before)
    for pa, pb in zip(a.ema.parameters(), b.ema.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_nan_data_stops_training_and_keeps_last_good_weights():
    x = _moons(10)
    x[3] = float("nan")
    trainer = Trainer(RunConfig(train=TrainConfig(batch_size=64)), x)
    before = copy.deepcopy(trainer.model.state_dict())
    result = trainer.run(steps=10)
    assert result.reason == "diverged" and "loss=nan" in result.message and "no good checkpoint" in result.message
    assert trainer.step == 0
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k])


def test_exploding_loss_stops_training():
    trainer = Trainer(RunConfig(train=TrainConfig(objective="x0")), _moons(1000))
    trainer.run(steps=60)
    trainer.x = trainer.x * 1e6  # data off by orders of magnitude: x_t explodes, so does the loss
    result = trainer.run(steps=10)
    assert result.reason == "diverged" and "exploded" in result.message
    assert trainer.step == 60


def test_callbacks_budgets_and_history():
    trainer = Trainer(RunConfig(train=TrainConfig(steps=10_000)), _moons(1000))
    seen = []

    def callback(tr, info):
        seen.append(info.step)
        if info.step % 5 == 0:
            tr.log(w1=0.5)
        return info.step == 12

    assert trainer.run(callback=callback).reason == "callback" and trainer.step == 12
    assert seen == list(range(1, 13))
    assert [row["step"] for row in trainer.history] == list(range(1, 13))
    assert trainer.history[4]["w1"] == 0.5 and "w1" not in trainer.history[5]
    result = trainer.run(seconds=0.3)
    assert result.reason == "time" and trainer.step > 12
    assert trainer.run(steps=7).steps == 7


def test_lr_warmup_and_cosine_decay():
    trainer = Trainer(RunConfig(train=TrainConfig(steps=1100, warmup_steps=100, lr=1e-3, decay="cosine")),
                      _moons(100))
    assert trainer.lr_at(0) == pytest.approx(1e-5)
    assert trainer.lr_at(99) == pytest.approx(1e-3)
    assert trainer.lr_at(600) == pytest.approx(0.55e-3)
    assert trainer.lr_at(1100) == pytest.approx(1e-4)
    assert trainer.lr_at(5000) == pytest.approx(1e-4)


@pytest.mark.parametrize("kwargs,match", [({"lr": 0.0}, "lr=0.0 is out of range"),
                                          ({"objective": "score"}, "unknown objective 'score'"),
                                          ({"batch_size": 0}, "batch_size=0 is out of range")])
def test_bad_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)
