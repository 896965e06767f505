"""Image metrics: torch-fidelity through the shipped MNIST classifier (offline), FID from features computed once
(equal to torch-fidelity's, with a bootstrap sd that bounds the spread of repeated real sets), the classifier's
outputs, memorisation and diversity. Real digits are the oracle: real vs real is small, noise far above it."""

import math

import pytest
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

from diffusion.data.image_datasets import load_images, to_uint8
from diffusion.metrics import image_metrics as metrics_images
from diffusion.metrics.classifier import load_classifier
from diffusion.metrics.fid import Frechet, features
from diffusion.metrics.image_metrics import (
    class_histogram,
    classifier_outputs,
    image_metrics,
    mean_pairwise_distance,
    pairwise_distance_sd,
    memorisation_ratio,
    nearest_neighbours,
    to_float,
)

MNIST = dict(extractor="classifier", dataset="mnist")


@pytest.fixture(scope="module")
def digits():
    """uint8 16x16 digits and labels, shuffled (the splits come sorted by class): 1,000 test images (100 a
    class) and the training images."""
    splits = [load_images("mnist", 16, split=split, download=False) for split in ("test", "train")]
    perms = [torch.randperm(len(s.y), generator=torch.Generator().manual_seed(0)) for s in splits]
    (test, y_test), (train, y_train) = [(to_uint8(s.x[p]), s.y[p]) for s, p in zip(splits, perms)]
    return test, y_test, train, y_train


@pytest.fixture(scope="module")
def classifier():
    return load_classifier("mnist", 16)


@pytest.fixture(scope="module")
def noise(digits):
    return torch.randint(0, 256, digits[0].shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_every_result_says_its_extractor_and_sample_counts(digits):
    test, _, train, _ = digits
    m = image_metrics(test[:300], train[:200], **MNIST)
    assert set(m) == {"fid", "isc_mean", "isc_std", "kid_mean", "kid_std", "kid_subset_size", "precision", "recall",
                      "f_score", "extractor", "n_generated", "n_real"}
    assert (m["extractor"], m["n_generated"], m["n_real"], m["kid_subset_size"]) == ("classifier-mnist-16", 300, 200,
                                                                                      100)


def test_fid_through_torch_fidelity_equals_fid_of_the_classifier_features(digits, classifier):
    test, _, train, _ = digits
    stats = [fid_features_to_statistics(classifier_outputs(x, classifier[0])[0]) for x in (test, train[:1000])]
    expected = fid_statistics_to_metric(*stats, False)["frechet_inception_distance"]
    assert image_metrics(test, train[:1000], ("fid",), **MNIST)["fid"] == pytest.approx(expected, rel=1e-6)


def test_fid_from_features_computed_once_equals_torch_fidelity_at_any_n(digits):
    """Frechet.distance: the symmetric form tr((S_r^1/2 S_g S_r^1/2)^1/2), through an m x m matrix when m < d."""
    test, _, train, _ = digits
    reference = Frechet.of(features(test[:500], **MNIST))
    for m in (500, 100):                                                  # d = 128 features: both routes
        expected = image_metrics(train[:m], test[:500], ("fid",), **MNIST)["fid"]
        assert reference.distance(features(train[:m], **MNIST)) == pytest.approx(expected, rel=1e-5)


def test_the_bootstrap_sd_of_fid_is_at_least_the_spread_of_repeated_real_sets(digits):
    """Resampling the generated features overstates FID's spread near the floor (measured ~1.9x for real digits at
    n = 500): never below the spread of disjoint real sets, and of its order (within 3x)."""
    test, _, train, _ = digits
    reference = Frechet.of(features(test[:500], **MNIST))
    pool = features(train, **MNIST)
    draws = [reference.distance(pool[k * 500:(k + 1) * 500]) for k in range(len(pool) // 500)]   # 8 disjoint sets
    value, sd = reference.distance_sd(pool[:500])
    assert value == draws[0] and torch.tensor(draws).std() < sd < 3 * torch.tensor(draws).std()


def test_fid_is_zero_on_itself_small_on_real_and_large_on_noise_or_shift(digits, noise, classifier):
    test, _, train, _ = digits
    feats = classifier_outputs(test, classifier[0])[0]
    trace = float(torch.cov(feats.T.double()).trace())
    floor = image_metrics(train[1000:2000], train[:1000], ("fid",), **MNIST)["fid"]   # 1,000 vs 1,000 real digits
    assert abs(image_metrics(test, test, ("fid",), **MNIST)["fid"]) < 1e-6 * trace
    assert image_metrics(test, train[:1000], ("fid",), **MNIST)["fid"] < 4 * floor
    shifted = to_uint8(to_float(test) + 0.3)                              # brighter background and strokes
    assert image_metrics(shifted, train[:1000], ("fid",), **MNIST)["fid"] > 50 * floor
    assert image_metrics(noise, train[:1000], ("fid",), **MNIST)["fid"] > 100 * floor


def test_kid_is_zero_within_its_spread_on_real_and_large_on_a_shift(digits):
    test, _, train, _ = digits
    test, train = test[:500], train[:500]
    real = image_metrics(test, train, ("kid",), **MNIST)
    shifted = image_metrics(to_uint8(to_float(test) + 0.3), train, ("kid",), **MNIST)
    assert abs(real["kid_mean"]) < 3 * real["kid_std"]
    assert shifted["kid_mean"] > 100 * real["kid_std"]


def test_inception_score_is_high_for_ten_balanced_classes_and_one_for_a_single_class(digits):
    test, labels, _, _ = digits
    assert image_metrics(test, test, ("isc",), **MNIST)["isc_mean"] > 5            # at most 10
    zeros = test[labels == 0]
    assert image_metrics(zeros, zeros, ("isc",), **MNIST)["isc_mean"] == pytest.approx(1.0, abs=0.05)


def test_precision_recall_high_for_real_and_zero_for_noise(digits, noise):
    test, _, train, _ = digits
    real = image_metrics(test, train[:1000], ("prc",), **MNIST)
    assert real["precision"] > 0.8 and real["recall"] > 0.8
    assert image_metrics(test, test, ("prc",), **MNIST)["precision"] == 1.0        # each point is in its own ball
    fake = image_metrics(noise, train[:1000], ("prc",), **MNIST)
    assert fake["precision"] < 0.05 and fake["recall"] < 0.05


def test_inception_offline_and_bad_arguments_give_clear_errors(digits, tmp_path, monkeypatch):
    test = digits[0][:10]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))                      # no cached Inception weights here
    with pytest.raises(ValueError, match=r"not on this machine.*extractor='classifier'.*inception_weights="):
        image_metrics(test, test, ("fid",), extractor="inception", download=False)
    with pytest.raises(ValueError, match="does not exist"):
        image_metrics(test, test, ("fid",), extractor="inception", inception_weights=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="needs dataset"):
        image_metrics(test, test, ("fid",))
    with pytest.raises(ValueError, match="unknown extractor 'vgg'"):
        image_metrics(test, test, ("fid",), extractor="vgg")
    with pytest.raises(ValueError, match="unknown metrics"):
        image_metrics(test, test, ("ppl",), **MNIST)
    with pytest.raises(ValueError, match="must be uint8"):
        image_metrics(to_float(test), test, ("fid",), **MNIST)
    with pytest.raises(ValueError, match="mnist-12.*python -m diffusion.metrics.classifier"):
        image_metrics(test[:, :, :12, :12], test[:, :, :12, :12], ("fid",), **MNIST)
    with pytest.raises(ValueError, match="uint8"):
        features(to_float(test), **MNIST)


def test_the_classifier_reads_real_digits_at_its_accuracy_and_counts_their_classes(digits, classifier):
    test, labels, _, _ = digits
    model, info = classifier
    accuracy = float((classifier_outputs(test, model)[1].argmax(1) == labels).float().mean())
    assert accuracy == pytest.approx(info.accuracy, abs=0.005)                           # uint8 rounding
    histogram = class_histogram(test, model)
    mistakes = round(len(test) * (1 - accuracy))
    assert histogram.shape == (10,) and int(histogram.sum()) == len(test)
    assert int((histogram - torch.bincount(labels, minlength=10)).abs().sum()) <= 2 * mistakes  # each moves 1


def test_training_copies_are_flagged_and_held_out_digits_are_not(digits):
    test, _, train, _ = digits
    copies = memorisation_ratio(train[:50], train, test[:500])
    assert torch.equal(copies.nearest, torch.arange(50)) and copies.ratio.max() == 0 and copies.copies.all()
    fresh = memorisation_ratio(test[500:], train, test[:500])
    assert fresh.ratio.median() == pytest.approx(1.0, abs=0.1)             # same distribution as the reference
    assert fresh.copies.float().mean() < 0.05 and fresh.copy_floor < 0.05  # near-duplicate real digits exist
    assert float(copies.holdout_ratio.median()) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="disjoint"):
        memorisation_ratio(test[:5], train, train[:10])


def test_nearest_neighbours_match_brute_force_in_small_blocks(monkeypatch):
    g = torch.Generator().manual_seed(2)
    gen, train = torch.rand(37, 1, 4, 4, generator=g), torch.rand(50, 1, 4, 4, generator=g)
    brute = (gen.flatten(1)[:, None] - train.flatten(1)[None]).norm(dim=2)          # (37, 50)
    monkeypatch.setattr(metrics_images, "_CDIST_ELEMENTS", 120)                    # blocks of 2 rows
    idx, dist = nearest_neighbours(gen, train)
    assert torch.equal(idx, brute.argmin(1))
    torch.testing.assert_close(dist, brute.min(1).values, rtol=1e-6, atol=1e-6)


def test_mean_pairwise_distance_exact_cases_and_gaussian_oracle(monkeypatch):
    assert mean_pairwise_distance(torch.zeros(5, 1, 2, 2, dtype=torch.uint8)) == 0
    black_white = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 255.0)]).to(torch.uint8)
    assert mean_pairwise_distance(black_white) == pytest.approx(2 * math.sqrt(16))   # -1 vs 1 in 16 pixels
    d, n = 256, 400
    monkeypatch.setattr(metrics_images, "_CDIST_ELEMENTS", 4000)                    # blocks of 10 rows
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(3))
    expected = 2 * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))        # E|x - y|, x, y ~ N(0, I_d)
    # a U-statistic's standard error ~ 2 sd(E[|x - y| given x]) / sqrt(n) <= 2 * 0.71 / sqrt(n); 4 of them
    value, sd = pairwise_distance_sd(z)
    assert value == mean_pairwise_distance(z) == pytest.approx(expected, abs=4 * 2 * 0.71 / math.sqrt(n))
    assert 0 < sd < 2 * 0.71 / math.sqrt(n)


def test_the_sd_of_the_mean_pairwise_distance_matches_repeated_samples():
    draws = 40
    values, sds = zip(*(pairwise_distance_sd(torch.randn(100, 8, generator=torch.Generator().manual_seed(k)))
                        for k in range(draws)))
    assert sum(sds) / draws == pytest.approx(torch.tensor(values).std().item(), rel=3 / math.sqrt(2 * (draws - 1)))
