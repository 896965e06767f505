"""The metric classifiers: shipped folders load offline and score what they recorded; training, saving, CLI."""

import json

import pytest
import torch

from diffusion.data.image_datasets import load_images
from diffusion.metrics import classifier as clf
from diffusion.metrics.classifier import (
    ClassifierInfo,
    FeatureCNN,
    FeatureCNNConfig,
    accuracy,
    classifier_dir,
    load_classifier,
    load_classifier_dir,
    main,
    random_shift,
    save_classifier,
    train_classifier,
)

SHIPPED = {("mnist", 16): 0.97, ("mnist", 28): 0.97, ("mnist", 32): 0.97, ("shapes", 16): 0.95,
           ("shapes", 32): 0.95, ("fashion-mnist", 16): 0.85}


@pytest.mark.parametrize("dataset,size", SHIPPED)
def test_shipped_classifiers_load_offline_and_are_small(dataset, size):
    model, info = load_classifier(dataset, size)
    path = classifier_dir(dataset, size)
    assert (info.dataset, info.image_size, model.config.image_size) == (dataset, size, size)
    assert info.accuracy >= SHIPPED[dataset, size]
    assert info.command.startswith("python -m diffusion.metrics.classifier ") and f"--image-size {size}" in info.command
    assert info.n_train > 0 and info.n_test > 0 and info.source
    assert (path / "model.safetensors").stat().st_size < 1_000_000
    assert not any(p.name.startswith(".") for p in path.iterdir())       # no temp files left behind
    assert model(torch.zeros(2, model.config.in_channels, size, size)).shape == (2, model.config.num_classes)


def test_mnist16_accuracy_remeasured_on_the_test_split_matches_the_record():
    model, info = load_classifier("mnist", 16)
    test = load_images("mnist", 16, split="test", download=False)
    measured = accuracy(model, test.x, test.y)
    assert info.accuracy >= 0.95 and measured >= 0.95
    if test.source.split(" (")[0] != info.source.split(" (")[0]:
        pytest.skip(f"test split from another source ({test.source}) than the record ({info.source})")
    assert len(test.x) == info.n_test
    assert measured == info.accuracy


def test_missing_classifier_names_the_folder_and_the_command(tmp_path):
    with pytest.raises(ValueError, match=r"mnist-12.*python -m diffusion\.metrics\.classifier --dataset mnist "
                                         r"--image-size 12 --out"):
        load_classifier("mnist", 12, root=tmp_path)


def test_save_load_round_trip_rebuilds_from_config(tmp_path):
    torch.manual_seed(0)
    model = FeatureCNN(FeatureCNNConfig(in_channels=3, image_size=8, num_classes=4, width=4, feature_dim=8)).eval()
    info = ClassifierInfo("shapes", 8, 0.5, 10, 5, "test", 1, 0, 0.1, "python -m diffusion.metrics.classifier ...")
    save_classifier(model, info, tmp_path / "c")
    loaded, loaded_info = load_classifier_dir(tmp_path / "c")
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    assert loaded_info == info and loaded.config == model.config
    assert torch.equal(loaded(x), model(x)) and torch.equal(loaded.features(x), model.features(x))
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["config.json", "model.safetensors"]


def test_corrupt_or_incomplete_folders_give_value_errors(tmp_path):
    model = FeatureCNN(FeatureCNNConfig(width=4, feature_dim=8))
    save_classifier(model, ClassifierInfo("mnist", 16, 0.5, 1, 1, "s", 1, 0, 0.0), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="model.safetensors missing"):
        load_classifier_dir(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_classifier_dir(tmp_path)


def test_config_validation_names_the_bad_value():
    with pytest.raises(ValueError, match=r"image_size=2 .*4\.\.64"):
        FeatureCNNConfig(image_size=2)


def test_random_shift_translates_each_image_by_at_most_max_shift():
    x = torch.full((64, 1, 12, 12), -1.0)
    x[:, :, 5, 6] = 1.0                                                   # one bright pixel, far from the edges
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and int((out == 1.0).sum()) == 64        # every image keeps its single pixel
    pos = (out[:, 0] == 1.0).flatten(1).nonzero()[:, 1]                  # (64,) flat index of each pixel
    dy, dx = pos.div(12, rounding_mode="floor") - 5, pos % 12 - 6
    assert set(dy.tolist()) == set(range(-2, 3)) and set(dx.tolist()) == set(range(-2, 3))
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)


def test_training_is_seeded_fast_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    model, info = train_classifier("mnist", 8, epochs=2, seed=3, download=False)
    again, _ = train_classifier("mnist", 8, epochs=2, seed=3, download=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert (info.n_train, info.n_test, info.epochs, info.seed) == (4000, 1000, 2, 3)
    assert info.accuracy > 0.7                                            # chance is 0.1; 0.85 measured
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert not model.training


def test_cli_bad_arguments_exit_2_with_one_line(capsys, tmp_path):
    for argv in (["--dataset", "nope", "--image-size", "16", "--out", str(tmp_path)],
                 ["--dataset", "mnist", "--image-size", "999", "--out", str(tmp_path)]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and "error" in err
    assert not any(tmp_path.iterdir())


def test_shipped_config_json_is_plain_json_with_the_architecture():
    raw = json.loads((classifier_dir("mnist", 16) / clf.CONFIG).read_text())
    assert raw["architecture"] == {"in_channels": 1, "image_size": 16, "num_classes": 10, "width": 16,
                                   "feature_dim": 128}
