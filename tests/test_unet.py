"""Image U-Net: shapes for every preset, config validation and JSON round trip, gradients, conditioning."""

import dataclasses
import json

import pytest
import torch

from diffusion.models.model_config import UNET_PRESETS, UNetConfig, unet_preset
from diffusion.models.unet import UNet

CONDITIONINGS = ("add", "cross")


def _tiny(**overrides) -> UNet:
    torch.manual_seed(0)
    return UNet(unet_preset("tiny", **overrides))


@torch.no_grad()
def _perturb(model: UNet) -> UNet:
    """Add noise to every weight. The zero-initialised last convs/projections make the output exactly 0 and
    every gradient upstream of them 0 at step 0, so gradient and conditioning checks need this first."""
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def _inputs(c: UNetConfig, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, c.channels, c.image_size, c.image_size, generator=g)
    return x, torch.randint(0, 1000, (batch,), generator=g)


@pytest.mark.parametrize("name", sorted(UNET_PRESETS))
@pytest.mark.parametrize("size", [16, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_equals_input_shape_batch_of_one(name, size, channels):
    levels = len(UNET_PRESETS[name]["channel_mult"])
    if size % 2 ** (levels - 1):
        pytest.skip(f"{name} has {levels} levels: size {size} is invalid (test_size_error covers it)")
    model = UNet(unet_preset(name, image_size=size, channels=channels))
    x = torch.randn(1, channels, size, size)
    with torch.no_grad():
        assert model(x, torch.tensor([999])).shape == x.shape


def test_size_error_names_size_divisor_and_levels():
    with pytest.raises(ValueError, match=r"image_size 28 is not divisible by 2\*\*3 = 8 needed by 4 levels"):
        unet_preset("small-32", image_size=28)


@pytest.mark.parametrize("overrides, message", [
    (dict(groups=12), "not divisible by groups=12"),
    (dict(head_dim=24), "not divisible by head_dim=24"),
    (dict(attention_levels=(2,)), r"attention_levels=\(2,\) has \[2\]"),
    (dict(conditioning="concat", num_classes=10), "conditioning='concat' must be one of"),
    (dict(conditioning="cross"), "needs num_classes > 0"),
    (dict(dropout=1.0), "dropout=1.0 is out of range"),
    (dict(num_classes=-1), "num_classes=-1"),
    (dict(channel_mult=()), "channel_mult=()"),
    (dict(base_width=0), "base_width=0 is out of range"),
    (dict(kind="mlp"), "kind='mlp' must be 'unet'"),
])
def test_invalid_config_raises_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        unet_preset("tiny", **overrides)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown U-Net preset 'huge'.*small-16"):
        unet_preset("huge")


@pytest.mark.parametrize("config", [unet_preset(n) for n in sorted(UNET_PRESETS)]
                         + [unet_preset("small-32", num_classes=10, conditioning="cross", dropout=0.1)])
def test_config_round_trips_through_json(config):
    restored = UNetConfig(**json.loads(json.dumps(dataclasses.asdict(config))))
    assert restored == config and hash(restored) == hash(config)
    assert restored.kind == "unet" and isinstance(restored.channel_mult, tuple)


def test_preset_parameter_counts():
    def count(name, **overrides):
        return sum(p.numel() for p in UNet(unet_preset(name, **overrides)).parameters())
    assert count("tiny", num_classes=10, conditioning="cross") < 200_000
    assert 1_000_000 <= count("small-16") <= 2_000_000
    assert 2_000_000 <= count("small-32") <= 4_000_000


def test_fresh_model_outputs_zero():
    """The zero-initialised output conv makes an untrained net predict exactly 0 (ADM's zero_module)."""
    model = _tiny(num_classes=10)
    x, t = _inputs(model.config)
    assert torch.equal(model(x, t), torch.zeros_like(x))


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_every_parameter_gets_a_gradient(conditioning):
    model = _perturb(_tiny(num_classes=10, conditioning=conditioning, dropout=0.1))
    x, t = _inputs(model.config)
    model(x, t, torch.tensor([0, 3, 10])).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_label_changes_output_and_none_is_the_null_label(conditioning):
    model = _perturb(_tiny(num_classes=10, conditioning=conditioning)).eval()
    assert model.null_label == 10
    x, t = _inputs(model.config)
    with torch.no_grad():
        outs = {y: model(x, t, torch.full((3,), y)) for y in (0, 1, model.null_label)}
        unconditional = model(x, t, None)
    assert torch.equal(unconditional, outs[model.null_label])
    for a, b in [(0, 1), (0, model.null_label), (1, model.null_label)]:
        assert (outs[a] - outs[b]).abs().amax(dim=(1, 2, 3)).min() > 1e-3


def test_unconditional_model_rejects_labels():
    model = _tiny()
    assert model.null_label is None
    x, t = _inputs(model.config)
    with pytest.raises(ValueError, match="unconditional"):
        model(x, t, torch.zeros(3, dtype=torch.long))


def test_time_changes_output_and_float_equals_long():
    model = _perturb(_tiny()).eval()
    x, _ = _inputs(model.config)
    with torch.no_grad():
        early, late = model(x, torch.full((3,), 10)), model(x, torch.full((3,), 900))
        assert torch.equal(early, model(x, torch.full((3,), 10.0)))
    assert (early - late).abs().amax(dim=(1, 2, 3)).min() > 1e-3


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_channels_last_bf16_autocast_matches_fp32(conditioning):
    model = _perturb(_tiny(num_classes=10, conditioning=conditioning, attention_levels=(1,)))
    x, t = _inputs(model.config)
    y = torch.tensor([0, 4, 10])
    reference = model(x, t, y).detach()
    model = model.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x.contiguous(memory_format=torch.channels_last), t, y)
    out.square().mean().backward()
    assert out.dtype == torch.float32 and out.shape == x.shape
    # bf16 keeps 8 significant bits (relative rounding 2**-9); ~20 layers compound to a few 1e-2 at most.
    assert (out.detach() - reference).norm() / reference.norm() < 0.05


def test_u_nets_run_nhwc_on_cpu_by_default_and_mlps_never():
    from diffusion.models import memory_format
    from diffusion.models.model_config import MLPConfig
    unet = unet_preset("tiny")
    assert memory_format(unet, "cpu") == torch.channels_last
    assert memory_format(unet, "cuda") == torch.contiguous_format
    assert memory_format(unet, "cuda", channels_last=True) == torch.channels_last
    assert memory_format(unet, "cpu", channels_last=False) == torch.contiguous_format
    assert memory_format(MLPConfig(), "cpu") == torch.contiguous_format
