"""Flow matching and likelihoods from the command line: train --objective flow (2D and a conditional image run),
sample with the flow samplers and guidance, evaluate --metrics nll (nats beside the true density's NLL; bits/dim of
held-out digits), and the one-line errors."""

import json

import numpy as np
import pytest
from test_cli import cli

from diffusion.cli import main


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_flow") / "moons-flow"
    done = cli("train", "--dataset", "moons", "--objective", "flow", "--time-sampling", "logit_normal",
               "--logit-std", "1.2", "--steps", "300", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_train_flow_then_sample_with_the_flow_samplers(flow_run, tmp_path):
    saved = json.loads((flow_run / "config.json").read_text())["train"]
    assert (saved["objective"], saved["time_sampling"], saved["logit_std"]) == ("flow", "logit_normal", 1.2)
    done = cli("sample", "--checkpoint", str(flow_run), "--n", "50", "--sampler", "flow_midpoint", "--steps", "5",
               "--out", str(tmp_path / "x.npy"))
    assert done.returncode == 0, done.stderr
    assert "9 network evaluations" in done.stdout and np.load(tmp_path / "x.npy").shape == (50, 2)   # 2N - 1


def test_evaluate_nll_in_2d_prints_nats_beside_the_true_nll(flow_run):
    done = cli("evaluate", "--checkpoint", str(flow_run), "--metrics", "nll", "--n", "200")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    lik = report["likelihood"]
    assert report["objective"] == "flow" and "sampler" not in report and lik["n"] == 200
    assert lik["t_range"] == [pytest.approx(0.0099015, rel=1e-5), 1.0] and lik["divergence"] == "exact"
    assert lik["end"]["matched"] and lik["end"]["sigma_min"] == pytest.approx(0.01, rel=1e-4)   # as diffusion runs
    assert lik["true_nll"]["mean"] < lik["nll"]["mean"] < lik["true_nll"]["mean"] + 3
    assert lik["kl_true_model"]["mean"] == pytest.approx(lik["nll"]["mean"] - lik["true_nll"]["mean"])


@pytest.mark.parametrize("args,message", [
    (["--metrics", "fid"], "--metrics fid is not offered for 2D"),
    (["--metrics", "nll", "--probes", "0"], "--probes 0 is out of range; allowed: 1 to 64"),
])
def test_bad_nll_requests_are_one_line_errors(flow_run, args, message, capsys):
    assert main(["evaluate", "--checkpoint", str(flow_run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_flow_settings_on_another_objective_are_refused(tmp_path, capsys):
    assert main(["train", "--dataset", "moons", "--time-sampling", "logit_normal", "--steps", "1", "--out",
                 str(tmp_path / "x")]) == 2
    assert "apply to the flow objective only, not 'v'" in capsys.readouterr().err   # moons' recipe: v


def test_a_conditional_flow_unet_then_bits_per_dim_of_held_out_digits(tmp_path, capsys):
    """Tiny U-Net, digits 0 and 1, flow objective with label dropout (guided sampling: test_flow), then bits/dim of
    held-out test digits conditioned on their labels (Hutchinson, 2 probes); in process (main), to skip two
    interpreter starts."""
    out = str(tmp_path / "digits-flow")
    assert main(["train", "--dataset", "mnist", "--classes", "0,1", "--image-size", "16", "--preset", "tiny",
                 "--conditional", "--objective", "flow", "--steps", "20", "--batch-size", "16", "--threads", "1",
                 "--out", out]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", out, "--metrics", "nll", "--n", "4", "--probes", "2",
                 "--threads", "1"]) == 0
    lik = json.loads(capsys.readouterr().out)["likelihood"]
    assert lik["n"] == 4 and lik["split"] == "test" and lik["probes"] == 2 and lik["probe_se"] > 0
    assert 0 < lik["bits_per_dim"]["mean"] < 8 + 8 and lik["bits_per_dim"]["se"] > 0
