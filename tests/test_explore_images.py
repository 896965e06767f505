"""diffusion.explore.image_experiments on tiny real runs: grids, the same noise in every class row (exact at w = 0), the
filmstrip's frames, FID with its interval and floor at the same n, histograms, memorisation, diversity and the cost of a step."""

import math

import numpy as np
import pytest
import torch

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.explore import image_experiments as ei
from diffusion.models.model_config import unet_preset
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Trajectory
from diffusion.training.trainer import Trainer

SAMPLER = SamplerConfig("ddim", steps=5)


def _run(conditional: bool, classes=None):
    data_cfg = DataConfig("mnist", image_size=16, classes=classes)
    data = ei.training_set(data_cfg)
    model = unet_preset("tiny", num_classes=10 if conditional else 0)
    trainer = Trainer(RunConfig(data=data_cfg, model=model, train=TrainConfig(steps=20, batch_size=16)), data.x,
                      data.y if conditional else None)
    trainer.run()
    return trainer.as_run()


@pytest.fixture(scope="module")
def cond():
    return _run(True)


@pytest.fixture(scope="module")
def digit0():
    return _run(False, classes=(0,))


def test_image_grid_shape_and_range():
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    grid = ei.image_grid(x, nrow=5, scale=2)
    assert grid.shape == (2 + 32 + 2, 2 + 5 * (32 + 2), 3) and grid.dtype == np.uint8
    with pytest.raises(ValueError, match="image_grid needs"):
        ei.image_grid(torch.zeros(2, 2, 8, 8))


def test_class_rows_share_their_noise(cond):
    unguided = ei.class_grid(cond, 3, SamplerConfig("ddim", steps=5, guidance=0.0)).view(10, 3, 1, 16, 16)
    assert torch.equal(unguided, unguided[:1].expand_as(unguided))     # w = 0 ignores the label: rows equal
    plain = ei.class_grid(cond, 3, SAMPLER).view(10, 3, 1, 16, 16)
    assert not torch.allclose(plain[0], plain[1])
    assert torch.equal(plain[2], cond.sample(3, SAMPLER, y=torch.full((3,), 2)))


def test_filmstrip_shows_the_chosen_steps_ending_at_the_output(digit0):
    picks = ei.even_frames(SAMPLER.steps, 3)
    assert picks[0] == 0 and picks[-1] == SAMPLER.steps and len(picks) == 3
    strip = ei.filmstrip(digit0, SAMPLER, n=2, picks=picks, scale=1)
    assert strip.timesteps[0] > strip.timesteps[1] > strip.timesteps[2] == 0
    assert strip.x_t.shape == strip.x0_hat.shape == (2 + 2 * 18, 2 + 3 * 18, 3)
    one = ei.filmstrip(digit0, SAMPLER, n=2, picks=[1], scale=1)
    trajectory = Trajectory()
    digit0.sample(2, SAMPLER, trajectory=trajectory)
    assert one.timesteps == [trajectory.paper_timesteps()[1]] and one.x_t.shape == (2 + 2 * 18, 2 + 18, 3)
    with pytest.raises(ValueError, match="allowed: 0 to"):
        ei.filmstrip(digit0, SAMPLER, n=2, picks=[SAMPLER.steps + 1])


def test_fid_with_its_interval_and_floor_at_the_same_n(cond, digit0):
    result, samples = ei.fid_measure(cond, n=40, steps=5)
    assert result.n == 40 and samples.shape == (40, 1, 16, 16) and result.protocol.name == "fid·clf·n40·test·bal10·ddim5·spacing=cubic·s0"
    assert result.reading("fid") == "above the floor"                  # 20 steps of training: far from the data
    assert 0 <= result.extra["accuracy"].low <= result.extra["accuracy"].value <= result.extra["accuracy"].high <= 1
    zeros, _ = ei.fid_measure(digit0, n=10_000, steps=5)                # capped at the 100 held-out zeros
    assert "accuracy" not in zeros.extra and zeros.n == 100 and "capped at 100" in zeros.cap


def test_metrics_frame_carries_the_floor_for_fid_only(cond):
    row = {"step": 10, **ei.fid_measure(cond, n=40, steps=5)[0].row()}
    df = ei.metrics_frame([row]).set_index("metric")
    fid, acc = df.loc["fid"], df.loc["accuracy"]
    assert (fid["value"], fid["floor"], fid["low"]) == (row["fid"], row["fid_floor"], row["fid_low"])
    assert acc["high"] == row["accuracy_high"] and math.isnan(acc["floor"])


def test_unguided_counts_are_guidance_zero_at_half_the_cost(cond):
    counts = ei.unguided_class_counts(cond, 20, steps=5)
    assert counts.shape == (10,) and counts.sum() == 20
    null = torch.full((6,), cond.net.null_label)
    cheap = cond.sample(6, SAMPLER, y=null)                                # one evaluation per step
    guided = cond.sample(6, SamplerConfig("ddim", steps=5, guidance=0.0), y=cond.balanced_labels(6))
    assert torch.allclose(cheap, guided, atol=1e-5)                        # uncond + 0 (cond - uncond) = uncond
    assert ei.network_evaluations(6, SAMPLER) * 2 == ei.network_evaluations(6, SamplerConfig("ddim", 5, guidance=0))


def test_class_shares_sum_to_one_with_wilson_intervals_for_the_generated_ones(cond):
    df = ei.class_shares(np.array([3, 1] + [0] * 8), cond.config.data)
    shares = df.groupby("source")["share"].sum()
    assert np.allclose(shares.values, 1.0) and len(df) == 20
    generated = df[df["source"] == "generated (w = 0)"]
    assert generated["share"].tolist()[:2] == [0.75, 0.25] and generated["low"].iloc[2] == 0.0
    assert (generated["low"] <= generated["share"]).all() and (generated["share"] < generated["high"]).all()
    train = df[df["source"] == "training set"]["share"]
    assert np.allclose(train.values, 0.1)                               # the fallback MNIST is balanced


def test_memorisation_flags_training_images_as_copies(digit0):
    train = ei.training_set(digit0.config.data).x[:8]
    memo = ei.memorisation_pairs(train, digit0.config.data, scale=1)
    assert memo.copies == 8 and max(memo.ratio) == 0.0
    assert 0 <= memo.copy_floor <= 1
    # pairs read as pairs: each (sample | nearest) tile framed in grey, PAIR_GAP white pixels between tiles; here
    # every sample is its own nearest image, so the two halves of each tile are equal
    size, gap = train.shape[-1], ei.PAIR_GAP
    tile_w, tile_h = 2 * size + 3 * 2, size + 2 * 2
    for i in range(8):
        x, y = gap + (i % 4) * (tile_w + gap), gap + (i // 4) * (tile_h + gap)
        tile = memo.pairs[y:y + tile_h, x:x + tile_w]
        assert (tile[0] == 128).all() and (memo.pairs[y - gap:y, x:x + tile_w] == 255).all()
        np.testing.assert_array_equal(tile[2:2 + size, 2:2 + size], tile[2:2 + size, 4 + size:4 + 2 * size])


def test_diversity_and_within_class_diversity():
    x = torch.zeros(4, 1, 2, 2)
    x[1] = 1.0
    spread = ei.within_class_diversity(x, torch.tensor([0, 0, 1, 1]))
    assert spread.value == pytest.approx(1.0) and spread.low == spread.high == 1.0        # (2 + 0) / 2, two pairs
    with pytest.raises(ValueError, match="at least 2 samples"):
        ei.within_class_diversity(x[:2], torch.tensor([0, 1]))


def test_step_cost_counts_parameters_and_memory(digit0):
    cost = ei.step_cost(digit0.config, steps=1)
    params = sum(p.numel() for p in digit0.net.parameters())
    assert cost["parameters"] == params and cost["weights_mb"] == pytest.approx(20 * params / 2**20)
    assert cost["seconds_per_step"] > 0 and cost["activations_mb"] > 0
