"""diffusion.explore.catalog: run folders found and read without their weights, a session Run giving the same row as its
folder, final loss and metrics taken from the history, and broken folders listed with their error."""

import json
import math
import shutil

import pandas as pd
import pytest

from diffusion.cli import main
from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.explore import catalog
from diffusion.metrics.measure import measure, measure_likelihood
from diffusion.models import build_model
from diffusion.models.model_config import unet_preset
from diffusion.training.checkpoints import LIKELIHOOD, load_run
from diffusion.training.defaults import recipe_2d
from diffusion.training.trainer import Trainer

CLI_STEPS, MEASURED_STEPS, MEASURE_EVERY = 20, 40, 20


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A real run folder written by `python -m diffusion train` (in-process)."""
    out = tmp_path_factory.mktemp("catalog") / "moons-cli"
    assert main(["train", "--dataset", "moons", "--steps", str(CLI_STEPS), "--timesteps", "200",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """(trainer, its folder): a 2D run whose history holds W1/W2/KL measured every MEASURE_EVERY steps."""
    config = RunConfig(data=DataConfig("8gaussians"), train=TrainConfig(steps=MEASURED_STEPS, batch_size=64))
    trainer = Trainer(config, load_data(config.data).x)

    def every(tr: Trainer, info) -> None:
        if info.step % MEASURE_EVERY == 0:
            tr.log(**measure(tr.as_run()))
    out = tmp_path_factory.mktemp("catalog") / "measured"
    trainer.run(callback=every, run_dir=out)
    return trainer, out


def _without_path(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("path", "source")}


def test_a_cli_run_is_read_from_its_config_and_history(cli_run):
    summary = catalog.read_folder(cli_run)
    assert summary.ok, summary.error
    row = catalog.row(summary)
    history = pd.read_csv(cli_run / "metrics.csv")
    assert (row["name"], row["source"], row["kind"], row["dataset"]) == ("moons-cli", "folder", "2D MLP", "moons")
    objective = recipe_2d("moons").objective                        # the CLI trains a 2D set with its recipe
    assert (row["T"], row["schedule"], row["objective"], row["conditioning"]) == (200, "linear", objective, "none")
    assert row["steps"] == CLI_STEPS == len(history)
    assert row["parameters"] == sum(p.numel() for p in build_model(summary.config.model).parameters())
    assert row["final_loss"] == pytest.approx(history["loss"].tail(catalog.LOSS_WINDOW).mean())
    assert row["train_seconds"] == pytest.approx(history["time"].iloc[-1]) and row["train_seconds"] > 0
    assert not set(catalog.METRIC_ORDER) & set(row)       # nothing measured during this run


def test_a_session_run_gives_the_same_row_as_its_folder(cli_run, measured):
    assert _without_path(catalog.row(catalog.read_run("moons-cli", load_run(cli_run)))) == \
        _without_path(catalog.row(catalog.read_folder(cli_run)))
    trainer, folder = measured
    in_memory = catalog.row(catalog.read_run("measured", trainer.as_run()))
    assert in_memory["source"] == "session" and in_memory["path"] == ""
    assert _without_path(in_memory) == _without_path(catalog.row(catalog.read_folder(folder)))


def test_final_metrics_and_curves_come_from_the_history(measured):
    trainer, folder = measured
    summary = catalog.read_folder(folder)
    last = [r for r in trainer.history if "w1" in r][-1]
    row = catalog.row(summary)
    assert last["step"] == MEASURED_STEPS
    for m in ("w1", "w2", "kl_model_true", "kl_true_model"):
        assert row[m] == pytest.approx(last[m]) and math.isfinite(row[m])
        assert row[f"{m}_low"] == pytest.approx(last[f"{m}_low"]) and row[f"{m}_floor"] == pytest.approx(last[f"{m}_floor"])
    assert (row["protocol"], row["n"]) == ("2d·n1000·fresh·ddim50·s0", 1000) and row["device"] == "cpu"
    metrics = catalog.metric_curves([summary])
    assert sorted(metrics["step"].unique()) == [MEASURE_EVERY, MEASURED_STEPS]
    assert set(metrics["metric"]) == {"w1", "w2", "kl_model_true", "kl_true_model", "nll"}   # nll: mixtures only
    assert (metrics["protocol"] == row["protocol"]).all() and (metrics["low"] <= metrics["value"]).all()
    w1 = metrics[metrics["metric"] == "w1"].iloc[-1]                         # its floor travels with it
    assert w1["floor_low"] <= w1["floor"] <= w1["floor_high"] and w1["floor"] == pytest.approx(row["w1_floor"])
    loss = catalog.loss_curves([summary], max_points=10)
    assert len(loss) == 10 and loss["step"].iloc[-1] == MEASURED_STEPS
    assert loss["time"].iloc[-1] == pytest.approx(trainer.history[-1]["time"])
    assert loss["loss"].iloc[-1] == pytest.approx(pd.Series([r["loss"] for r in trainer.history]).tail(4).mean())


def _broken_folders(root, good) -> dict[str, str]:
    """Damaged copies of a good run: name -> the word its error must contain."""
    for name in ("bad-json", "no-ema", "bad-ema", "bad-config", "bad-csv"):
        shutil.copytree(good, root / name)
    (root / "bad-json" / "config.json").write_text("{not json")
    (root / "no-ema" / "ema.safetensors").unlink()
    (root / "bad-ema" / "ema.safetensors").write_bytes(b"\x00garbage")
    raw = json.loads((good / "config.json").read_text())
    raw["schedule"]["name"] = "quadratic"
    (root / "bad-config" / "config.json").write_text(json.dumps(raw))
    (root / "bad-csv" / "metrics.csv").write_text("step,loss\n1,\"unterminated\n")
    (root / "half-written").mkdir()
    (root / "half-written" / "ema.safetensors.pending").write_bytes(b"")
    return {"bad-json": "JSONDecodeError", "no-ema": "missing ema.safetensors", "bad-ema": "unreadable",
            "bad-config": "quadratic", "bad-csv": "unreadable", "half-written": "missing config.json"}


def test_broken_folders_are_listed_with_their_error_and_never_crash(cli_run, tmp_path):
    shutil.copytree(cli_run, tmp_path / "good")
    expected = _broken_folders(tmp_path, cli_run)
    (tmp_path / "classifiers" / "mnist-16").mkdir(parents=True)    # feature networks, not runs: skipped
    assert tmp_path / "classifiers" / "mnist-16" in catalog.discover(tmp_path, skip=())
    summaries = {s.name: s for s in map(catalog.read_folder, catalog.discover(tmp_path))}
    assert set(summaries) == {"good", *expected}
    assert summaries["good"].ok
    for name, word in expected.items():
        assert not summaries[name].ok and word in summaries[name].error, (name, summaries[name].error)
    table = catalog.table(list(summaries.values()))
    assert len(table) == len(summaries) and (table["error"] != "").sum() == len(expected)
    assert catalog.loss_curves(list(summaries.values()))["run"].unique().tolist() == ["good"]


def test_folder_runs_accepts_a_run_or_a_folder_of_runs_and_names_a_bad_path(cli_run, tmp_path):
    assert catalog.folder_runs(cli_run) == [cli_run]
    assert catalog.folder_runs(cli_run.parent) == [cli_run]
    for bad in (tmp_path / "missing", tmp_path):
        with pytest.raises(ValueError, match=str(bad)):
            catalog.folder_runs(bad)


def test_the_repository_checkpoints_skip_the_classifiers_and_shipped_runs_read():
    found = catalog.discover()
    assert all(p.parent.name != "classifiers" and p.name != "classifiers" for p in found)
    assert set(catalog.SHIPPED_RUNS) <= {p.name for p in found}          # every shipped run is in this copy
    for path in found:
        summary = catalog.read_folder(path)
        if path.name in catalog.SHIPPED_RUNS:
            assert summary.ok and summary.source == "shipped", summary.error
            assert catalog.row(summary)["parameters"] > 0


def test_architecture_names_presets_and_counts_parameters_without_weights():
    cross = unet_preset("tiny", num_classes=10, conditioning="cross")
    assert catalog.architecture(cross) == "U-Net tiny" and catalog.conditioning(cross) == "cross"
    assert catalog.architecture(unet_preset("small-32", image_size=16, channels=1)) == "U-Net small-32"
    custom = unet_preset("tiny", base_width=24, groups=8, head_dim=24)
    assert catalog.architecture(custom).startswith("U-Net 24x(1, 2)")
    for cfg in (cross, custom):
        assert catalog.parameter_count(cfg) == sum(p.numel() for p in build_model(cfg).parameters())


def test_only_numbers_of_one_protocol_and_data_are_compared(measured):
    """Runs measured under different protocols, or on different data, land in different groups, and the group says
    what its runs differ in."""
    row = catalog.row(catalog.read_folder(measured[1]))
    table = pd.DataFrame([row, {**row, "name": "more steps", "steps": 2 * row["steps"]},
                          {**row, "name": "old", "protocol": "old·2d·n1000·fresh·ddim50·s0"},
                          {**row, "name": "moons", "dataset": "moons"}])
    groups = catalog.comparable(table, "w1")
    assert len(groups) == 3 and sorted(len(g) for g in groups.values()) == [1, 1, 2]
    same = next(g for g in groups.values() if len(g) == 2)
    assert list(same["name"]) == ["measured", "more steps"] and catalog.differences(same) == ["steps"]


def test_shipped_runs_say_their_device_and_label_the_rows_of_the_old_protocol():
    for name in catalog.SHIPPED_RUNS:
        summary = catalog.read_folder(catalog.CHECKPOINTS_DIR / name)
        assert summary.device in ("cpu", "cuda") and (name != "moons" or summary.device == "cpu"), name
        history = summary.history.dropna(subset=["w1" if summary.config.model.kind == "mlp" else "fid"])
        old, new = history[history["protocol"].str.startswith("old·")], history[~history["protocol"].str.startswith("old·")]
        assert new["step"].iloc[-1] == summary.step, name   # measured under the protocol at the end (the moons pair,
        # trained under it, at every row; mnist16-cond re-measured again with its stratified floor, bal10)
        assert (old["step"] <= summary.step).all() and history["protocol"].notna().all()
        assert catalog.final_metrics(summary.history)["protocol"] == new["protocol"].iloc[-1]


def test_a_likelihood_measurement_reaches_the_table_and_goes_stale_when_the_run_trains_on(cli_run, tmp_path):
    folder = shutil.copytree(cli_run, tmp_path / "run")
    report = measure_likelihood(folder, n=64)
    assert json.loads((folder / LIKELIHOOD).read_text()) == report and report["step"] == CLI_STEPS
    row = catalog.row(catalog.read_folder(folder))
    nll, true_nll = report["nll"], report["true_nll"]
    assert row["model_nll"] == nll["mean"] and row["model_nll_floor"] == true_nll["mean"]
    assert row["model_nll_high"] - row["model_nll"] == pytest.approx(1.959964 * nll["se"]) and row["likelihood_n"] == 64
    assert row["model_nll"] > row["model_nll_floor"]      # 20 steps of training: far from the true density
    (folder / LIKELIHOOD).write_text(json.dumps({**report, "step": CLI_STEPS - 1}))   # measured before the last step
    assert "model_nll" not in catalog.row(catalog.read_folder(folder))
