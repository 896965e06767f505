import json
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest
from conftest import ROOT

from diffusion.cli import _parser, main
from diffusion.cli.options import sampler_flag, sampler_settings
from diffusion.sampling.sampler_config import SamplerConfig


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffusion", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "moons"
    done = cli("train", "--dataset", "moons", "--model", "mlp", "--schedule", "linear", "--timesteps", "1000",
               "--steps", "400", "--batch-size", "128", "--lr", "1e-3", "--seed", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "step 400" in done.stdout
    return out


def test_train_sample_evaluate_data_end_to_end(run_dir, tmp_path):
    done = cli("sample", "--checkpoint", str(run_dir), "--n", "300", "--sampler", "ddim", "--steps", "20",
               "--eta", "0", "--seed", "0", "--out", str(tmp_path / "s.npy"))
    assert done.returncode == 0, done.stderr
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (300, 2) and samples.dtype == np.float32 and np.isfinite(samples).all()

    done = cli("evaluate", "--checkpoint", str(run_dir), "--n", "300", "--sampler", "ddpm", "--steps", "100")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["step"] == 400 and report["n"] == report["n_requested"] == 300 and report["cap"] == ""
    assert report["sampler"]["name"] == "ddpm" and report["protocol"] == "2d·n300·fresh·ddpm100·s0"
    assert set(report["metrics"]) == {"w1", "w2", "kl_model_true", "kl_true_model"}
    w1 = report["metrics"]["w1"]
    assert w1["low"] <= w1["value"] <= w1["high"] and w1["method"] == "delta method" and "95%" in report["interval"]
    assert w1["floor"]["low"] <= w1["floor"]["value"] <= w1["floor"]["high"] < w1["value"] < 1.0
    assert w1["reading"] == "above the floor"                              # 400 steps: not yet at the floor

    done = cli("data", "--dataset", "moons", "--n", "500", "--seed", "1", "--out", str(tmp_path / "true.npy"))
    assert done.returncode == 0, done.stderr
    true = np.load(tmp_path / "true.npy")
    assert true.shape == (500, 2) and abs(true.std() - 1) < 0.15


def test_same_seed_same_samples_and_csv_output(run_dir, tmp_path):
    for name in ("a.npy", "b.npy"):
        assert cli("sample", "--checkpoint", str(run_dir), "--n", "50", "--steps", "10", "--seed", "7",
                   "--out", str(tmp_path / name)).returncode == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert cli("sample", "--checkpoint", str(run_dir), "--n", "5", "--steps", "10",
               "--out", str(tmp_path / "s.csv")).returncode == 0
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "x,y"


def test_resume_with_other_settings_is_refused(run_dir):
    done = cli("train", "--dataset", "circles", "--steps", "500", "--out", str(run_dir))
    assert done.returncode == 2
    assert "holds a run with other settings: --dataset circles (the run has moons)" in done.stderr


@pytest.mark.parametrize("args,message", [
    (["train", "--dataset", "banana", "--out", "X"], "unknown dataset 'banana'; allowed: gaussian"),
    (["train", "--schedule", "quadratic", "--out", "X"], "invalid choice: 'quadratic'"),
    (["train", "--timesteps", "1", "--out", "X"], "timesteps=1 is out of range; allowed: integers from 2 to 4000"),
    (["train", "--lr", "-1", "--out", "X"], "lr=-1.0 is out of range"),
    (["train", "--minutes", "-2", "--out", "X"], "--minutes -2.0 is out of range"),
    (["train", "--steps", "abc", "--out", "X"], "invalid int value: 'abc'"),
    (["sample", "--checkpoint", "RUN", "--sampler", "plms", "--out", "x.npy"], "invalid choice: 'plms'"),
    (["sample", "--checkpoint", "RUN", "--steps", "5000", "--out", "x.npy"], "allowed: 1 to T=1000"),
    (["sample", "--checkpoint", "RUN", "--eta", "2", "--out", "x.npy"], "eta=2.0 is out of range; allowed: a number from 0 to 1"),
    (["sample", "--checkpoint", "RUN", "--n", "0", "--out", "x.npy"], "--n 0 is out of range"),
    (["sample", "--checkpoint", "RUN", "--label", "3", "--out", "x.npy"], "this run is unconditional"),
    (["sample", "--checkpoint", "RUN", "--out", "x.png"], "2D points are written as .npy or .csv"),
    (["sample", "--checkpoint", "MISSING", "--out", "x.npy"], "config.json is missing"),
    (["evaluate", "--checkpoint", "CORRUPT"], "corrupt checkpoint"),
])
def test_bad_input_one_line_exit_2(run_dir, tmp_path, capsys, args, message):
    """In-process for speed (the end-to-end tests above run the real subprocess): same parser, same main."""
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text((run_dir / "config.json").read_text())
    (corrupt / "ema.safetensors").write_bytes(b"not a safetensors file")
    paths = {"RUN": str(run_dir), "MISSING": str(tmp_path / "missing"), "CORRUPT": str(corrupt),
             "X": str(tmp_path / "x"), "x.npy": str(tmp_path / "x.npy"), "x.png": str(tmp_path / "x.png")}
    try:
        code = main([paths.get(a, a) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_every_sampler_setting_is_a_flag_and_parses_back_to_its_config():
    """The sampler's flags are SamplerConfig's fields: each one given on the command line reaches the config."""
    argv = ["sample", "--checkpoint", "c", "--out", "o.npy", "--sampler", "heun", "--steps", "7", "--grid", "karras",
            "--rho", "5", "--sigma-min", "0.01", "--sigma-max", "20", "--churn", "3", "--s-min", "0.1", "--s-max", "9",
            "--s-noise", "1.1", "--no-clip", "--guidance", "2"]
    expected = SamplerConfig("heun", 7, clip="none", guidance=2.0, grid="karras", rho=5.0, sigma_min=0.01,
                             sigma_max=20.0, S_churn=3.0, S_min=0.1, S_max=9.0, S_noise=1.1)
    assert sampler_settings(_parser().parse_args(argv)) == expected
    ddim = ["sample", "--checkpoint", "c", "--out", "o.npy", "--eta", "0.5", "--spacing", "leading"]
    assert sampler_settings(_parser().parse_args(ddim)) == SamplerConfig("ddim", 50, eta=0.5, spacing="leading")
    assert sampler_settings(_parser().parse_args(["sample", "--checkpoint", "c", "--out", "o"])) == SamplerConfig()
    flags = {a.dest for a in _parser()._subparsers._group_actions[0].choices["evaluate"]._actions}
    assert {sampler_flag(f.name)[2:].replace("-", "_") for f in fields(SamplerConfig)} <= flags


def test_evaluate_budget_prints_the_error_budget_table(run_dir):
    done = cli("evaluate", "--checkpoint", str(run_dir), "--n", "200", "--sampler", "ddim", "--steps", "20",
               "--budget")
    assert done.returncode == 0, done.stderr
    rows = {line.split(" | ")[0].strip("| "): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert {"floor", "solver", "network", "network, per sample", "total"} <= set(rows)
    assert all("2d·n200·fresh·ddim20·spacing=cubic·s0" in rows[t] and "[" in rows[t] for t in ("floor", "solver", "total"))
    assert "quadrature" in done.stdout and "solver + network: holds" in done.stdout
    done = cli("evaluate", "--checkpoint", str(run_dir), "--budget", "--guidance", "2")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "guidance" in done.stderr


def test_study_budget_writes_each_rows_error_budget(tmp_path, capsys):
    moons = str(ROOT / "checkpoints" / "moons")
    assert main(["study", "--checkpoint", moons, "--samplers", "ddim,heun", "--nfe", "5", "--n", "20", "--budget",
                 "--out", str(tmp_path / "budget.md")]) == 0
    table = (tmp_path / "budget.md").read_text()
    assert table.count("\n| ddim |") == 1 and table.count("\n| heun |") == 1 and table.count("\n| ddpm |") == 1
    assert "| floor | solver | network | displacement | total |" in table and "holds in every row" in table
    assert table in capsys.readouterr().out
    assert main(["study", "--checkpoint", moons, "--budget", "--precision", "bfloat16", "--out",
                 str(tmp_path / "b.csv")]) == 2
    assert "float32 only" in capsys.readouterr().err
