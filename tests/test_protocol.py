"""The measurement protocol: one frozen, hashable, named object; the reference, every floor draw and the generated
set of one measurement have the same n (derived here independently, so a mismatch fails); a cap is said; the floor's
real sets are disjoint from the reference; a perfect model reads "at the floor", a poor one "above"."""

from dataclasses import replace

import pytest
import torch

from diffusion.config import DataConfig
from diffusion.data import load_data
from diffusion.data.image_datasets import load_images, to_uint8
from diffusion.data.toy_datasets import toy_dataset
from diffusion.metrics.evaluation import measure_run, measure_samples, prepare_floor
from diffusion.metrics.fid import Frechet, features
from diffusion.metrics.intervals import ABOVE, AT, reading
from diffusion.metrics.points2d import score_2d
from diffusion.metrics.protocol import (
    FLOOR_DRAWS,
    FLOOR_SEED,
    REFERENCE_SEED,
    Protocol,
    image_protocol,
    points_protocol,
    points_reference,
    reference_for,
    stratify,
)
from diffusion.metrics.intervals import prediction_factor
from diffusion.metrics.prc import precision_recall
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.checkpoints import CHECKPOINTS_DIR, load_run

MOONS, ZEROS = DataConfig("moons"), DataConfig("mnist", image_size=16, classes=(0,))


def test_a_protocol_is_hashable_named_and_validated():
    p = image_protocol(DataConfig("mnist", image_size=16), 500, SamplerConfig("ddim", 20, spacing="trailing", guidance=2.0))
    assert p.name == "fid·clf·n500·test·ddim20·w2·s0"
    assert points_protocol(1000).name == "2d·n1000·fresh·ddim50·s0"
    assert {p: 1}[replace(p)] == 1 and p.real_side() == replace(p, sampler=SamplerConfig("heun", 18)).real_side()
    assert image_protocol(DataConfig("folder:/x", image_size=16)).reference == "train"
    assert "n200" in Protocol("fid", 200, extractor="inception", reference="train").name
    for bad, match in [(dict(family="lpips"), "unknown metric family"), (dict(extractor="clf"), "extractor"),
                       (dict(n=1), "n=1"), (dict(seed=-1), "seed=-1"),
                       (dict(reference_seed=FLOOR_SEED + 3), "one of the floor's seeds")]:
        with pytest.raises(ValueError, match=match):
            Protocol(**{"family": "points2d", "n": 100, **bad})


def test_every_floor_draw_and_the_number_of_a_2d_measurement_have_the_same_n():
    """Derive the reference and each floor draw by hand: same n as the samples, and the same floor numbers."""
    run = load_run(CHECKPOINTS_DIR / "moons")
    protocol = points_protocol(400)
    result, samples = measure_run(run, protocol)
    ref = reference_for(protocol, MOONS)
    toy = toy_dataset("moons")
    reference = toy.sample(400, torch.Generator().manual_seed(REFERENCE_SEED))
    draws = [toy.sample(400, torch.Generator().manual_seed(FLOOR_SEED + k)) for k in range(FLOOR_DRAWS)]
    assert len(samples) == result.n == ref.n == len(reference) == 400 and ref.draw_sizes == (400,) * FLOOR_DRAWS
    w1 = [score_2d(d, reference, mixture=toy.mixture)["w1"][0] for d in draws]
    assert ref.floor["w1"].value == pytest.approx(sum(w1) / len(w1), rel=1e-12)
    assert result.metrics["w1"].value == pytest.approx(score_2d(samples, reference)["w1"][0], rel=1e-12)
    with pytest.raises(ValueError, match="compares 400 samples"):
        ref.measure(samples[:300])


def test_a_perfect_2d_model_reads_at_the_floor_and_a_shifted_one_above():
    toy, protocol = toy_dataset("moons"), points_protocol(400)
    perfect = measure_samples(toy.sample(400, torch.Generator().manual_seed(1)), protocol, MOONS)
    shifted = measure_samples(toy.sample(400, torch.Generator().manual_seed(1)) + 0.3, protocol, MOONS)
    for m in ("w1", "w2", "kl_model_true", "kl_true_model"):
        assert perfect.reading(m) == AT and shifted.reading(m) == ABOVE, m
        assert perfect.metrics[m].low <= perfect.metrics[m].value <= perfect.metrics[m].high
    assert set(perfect.row()) >= {"protocol", "n", "w1", "w1_low", "w1_high", "w1_floor", "w1_floor_low"}


def test_images_cap_n_at_the_held_out_images_and_say_so():
    """Offline MNIST has 100 test zeros: n = 500 is capped at 100 for the reference, each floor draw and the
    samples; the reference is those test zeros and the floor training zeros (disjoint splits)."""
    run = load_run(CHECKPOINTS_DIR / "mnist16-digit0")
    protocol = image_protocol(ZEROS, 500, SamplerConfig("ddim", 5))
    result, samples = measure_run(run, protocol)
    ref = reference_for(protocol, ZEROS)
    test = load_images("mnist", 16, classes=(0,), split="test").x
    assert len(samples) == result.n == ref.n == len(ref.images) == len(test) == 100
    assert ref.draw_sizes == (100,) * FLOOR_DRAWS and "capped at 100 (asked 500)" in result.cap
    assert sorted(map(bytes, ref.images.numpy())) == sorted(map(bytes, to_uint8(test).numpy()))
    train = to_uint8(load_data(ZEROS).x)
    frechet = Frechet.of(features(to_uint8(test), dataset="mnist"))
    picks = [torch.randperm(len(train), generator=torch.Generator().manual_seed(FLOOR_SEED + k))[:100]
             for k in range(FLOOR_DRAWS)]
    floor = [frechet.distance(features(train[p], dataset="mnist")) for p in picks]
    assert ref.floor["fid"].value == pytest.approx(sum(floor) / len(floor), rel=1e-6)   # float32 features
    assert result.sentence("fid").endswith(f"(n = 100; {result.cap}; {protocol.name})")


def test_training_images_as_reference_split_them_in_disjoint_halves_and_report_memorisation():
    protocol = Protocol("fid", 500, extractor="classifier", reference="train")
    ref = reference_for(protocol, ZEROS)
    train = to_uint8(load_data(ZEROS).x)                                   # 400 training zeros
    assert ref.n == 200 and "disjoint halves of 400" in ref.cap and ref.draw_sizes == (200,)
    seen = {bytes(x) for x in ref.images.numpy()}
    assert not seen & {bytes(x) for x in to_uint8(ref.pool).numpy()} and len(ref.pool) == 200
    real = measure_samples(train[torch.randperm(400)[:200]], protocol, ZEROS)
    assert set(real.details["memorisation"]) == {"copies", "copies_among_real", "median_ratio"}


def test_real_images_read_at_the_floor_and_noisy_ones_above():
    data = DataConfig("mnist", image_size=16)
    protocol = image_protocol(data, 300)
    train = load_data(data).x
    fresh = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(3))[:300]]
    assert measure_samples(fresh, protocol, data).reading("fid") == AT
    noisy = (fresh + 0.4 * torch.randn(fresh.shape, generator=torch.Generator().manual_seed(4))).clamp(-1, 1)
    assert measure_samples(noisy, protocol, data).reading("fid") == ABOVE


def test_a_class_protocol_measures_against_that_class_alone():
    p = points_protocol(300, label=1)
    assert p.name == "2d·n300·fresh·c1·ddim50·s0" and "of class 1" in p.describe()
    ref = points_reference(p, "circles")                       # class 1: the inner circle
    inner, outer = (toy_dataset("circles").sample_class(300, torch.Generator().manual_seed(s), label)
                    for s, label in ((5, 1), (6, 0)))
    assert reading(ref.measure(inner)["w1"], ref.floor["w1"]) == "at the floor"
    assert reading(ref.measure(outer)["w1"], ref.floor["w1"]) == "above the floor"
    assert ref.draw_sizes == (300,) * FLOOR_DRAWS
    for bad in (True, -1, "0"):
        with pytest.raises(ValueError, match="protocol label"):
            points_protocol(300, label=bad)
    with pytest.raises(ValueError, match="for 2D protocols only"):
        Protocol("fid", 100, extractor="classifier", reference="test", label=0)
    with pytest.raises(ValueError, match="not one of 'swissroll'"):
        points_reference(points_protocol(50, label=0), "swissroll")


def _balanced(n: int, classes: int) -> torch.Tensor:
    return torch.arange(classes).repeat(n // classes + 1)[:n]


def test_a_sample_drawn_with_balanced_labels_reads_its_stratified_floor():
    """True points drawn with balanced labels (40 of each of 25gaussians' classes), as a conditional run's samples
    are: against an i.i.d. floor they read about 0.80x it (a balanced set sits closer to the data); against the floor
    drawn the same way (stratified) they read 1.0x it. Three such sets, mean W1 / floor within 10% of 1."""
    toy, data, n = toy_dataset("25gaussians"), DataConfig("25gaussians"), 1000
    y = _balanced(n, toy.num_classes)
    ratios = []
    for seed in (1, 2, 3):
        g = torch.Generator().manual_seed(seed)
        x = torch.cat([toy.sample_class(int((y == c).sum()), g, c) for c in range(toy.num_classes)])
        result = measure_samples(x, points_protocol(n), data, y=y)
        ratios.append(result.metrics["w1"].value / result.floor["w1"].value)
        assert result.reading("w1") == AT
    assert 0.9 < sum(ratios) / 3 < 1.1, ratios
    assert result.protocol.name == "2d·n1000·fresh·bal25·ddim50·s0" and "stratified" in result.protocol.describe()


def test_stratified_image_floor_draws_hold_the_samples_class_counts():
    """Each floor draw of a protocol stratified 80 zeros + 20 ones holds exactly those training images (looked up by
    their bytes among the training images of each class)."""
    data = DataConfig("mnist", image_size=16, classes=(0, 1))
    train = load_data(data)
    label_of = {bytes(x): int(c) for x, c in zip(to_uint8(train.x).numpy(), train.y)}
    y = torch.tensor([0] * 80 + [1] * 20)
    protocol = stratify(image_protocol(data, 100), y)
    assert protocol.strata == ((0, 80), (1, 20)) and "y0:80+1:20" in protocol.name
    ref = reference_for(protocol, data)
    assert len(ref.floor_sets) == FLOOR_DRAWS and ref.draw_sizes == (100,) * FLOOR_DRAWS
    for draw in ref.floor_sets:
        labels = [label_of[bytes(x)] for x in draw.numpy()]
        assert labels.count(0) == 80 and labels.count(1) == 20
    with pytest.raises(ValueError, match="counts add up to n"):
        replace(protocol, n=99)


def test_kid_is_precision_and_recall_floors_come_from_every_floor_draw():
    """Precision and recall of each floor draw against the reference, computed here on the classifier's features:
    their mean is the floor, its interval the prediction interval of the draws; the samples' intervals are bootstrap
    ones (never narrower than the floor's spread); KID and IS get floors from the same draws."""
    protocol = image_protocol(ZEROS, 100)
    ref = reference_for(protocol, ZEROS)
    real = ref.embed(ref.images)
    values = [precision_recall(ref.embed(d), real, replicates=0)["precision"][0] for d in ref.floor_sets]
    train = to_uint8(load_data(ZEROS).x)
    result = measure_samples(train[torch.randperm(len(train), generator=torch.Generator().manual_seed(9))[:100]],
                             protocol, ZEROS, extra_metrics=("kid", "isc", "prc"))
    floor = result.floor["precision"]
    assert floor.value == pytest.approx(sum(values) / len(values)) and "prediction interval" in floor.method
    assert floor.high - floor.low == pytest.approx(2 * prediction_factor(FLOOR_DRAWS) * float(
        torch.tensor(values, dtype=torch.float64).std()) / ref.finite_population, rel=1e-6) or floor.high == 1.0
    for m in ("kid", "isc", "precision", "recall"):
        assert m in result.floor and "draws" in result.floor[m].method, m
    assert "bootstrap" in result.extra["recall"].method and result.reading("kid") == AT
    assert result.report()["precision"]["floor"]["value"] == floor.value


def test_the_floor_a_training_page_prepares_is_the_one_its_measurement_uses():
    """prepare_floor (built before a page's clock runs) is, for a conditional run, the stratified reference that
    measure_run then measures against: the same cached object."""
    run = load_run(CHECKPOINTS_DIR / "mnist16-cond")
    protocol = image_protocol(run.config.data, 60, SamplerConfig("ddim", 3))
    ref = prepare_floor(protocol, run.config)
    result, _ = measure_run(run, protocol)
    assert "bal10" in result.protocol.name and reference_for(result.protocol, run.config.data) is ref
    assert result.floor["fid"] == ref.floor["fid"]


def test_a_sampler_tag_keeps_its_meaning_when_a_default_moves():
    from diffusion.metrics.protocol import MEASUREMENT_SAMPLER, sampler_tag
    assert sampler_tag(MEASUREMENT_SAMPLER) == "ddim50" and MEASUREMENT_SAMPLER.timestep_spacing == "trailing"
    assert sampler_tag(SamplerConfig("ddim", 50)) == "ddim50·spacing=cubic"        # today's default DDIM is not 'ddim50'
    assert sampler_tag(SamplerConfig("heun", 18, grid="karras")) == "heun18"
    assert sampler_tag(SamplerConfig("heun", 18)) == "heun18·grid=equal_error"
