"""Quality measured while a run trains, as columns of its history (and so of metrics.csv), under one protocol:
2D runs, W1, W2 and both KLs of 1,000 DDIM samples against 1,000 fresh true points; image runs, FID of n DDIM-50
samples on the dataset classifier's features against n held-out images and, for conditional runs, the accuracy of
the requested labels. Every row carries its protocol name, n and the interval bounds (evaluation.Result.row).

Re-measuring a finished run folder under the protocol (remeasure) labels the rows measured before the protocol
existed (LEGACY) and adds one measurement at the final step: python benchmarks/remeasure.py checkpoints/NAME
(--likelihood also writes the model's held-out likelihood, measure_likelihood, where the compare page reads it).
"""

import json
from pathlib import Path

import pandas as pd

from diffusion.metrics.evaluation import LIVE_2D_N, live_protocol, measure_run
from diffusion.metrics.protocol import MEASUREMENT_SAMPLER, Protocol, image_protocol
from diffusion.sampling.run import Run
from diffusion.training import distributed
from diffusion.training.checkpoints import LIKELIHOOD, METRICS, atomic_write, load_run
from diffusion.training.trainer import Callback, StepInfo, Trainer

IMAGE_SAMPLER = MEASUREMENT_SAMPLER
IMAGE_N = 500
# Rows measured before the protocol: FID of n DDIM-50 samples against up to n training images, the floor two halves of
# those images (n/2 vs n/2); 2D, as today's live protocol but with no interval and one floor draw. No interval.
LEGACY = {"fid": "old·fid·clf·n{n}·train-halves·ddim50·s0", "w1": "old·2d·n1000·fresh·ddim50·s0"}


def protocol_of(run: Run, n: int | None = None) -> Protocol:
    """The protocol of a training measurement: live_protocol in 2D (n: 1,000 by default), else FID of n (IMAGE_N)
    DDIM-50 samples."""
    if not run.is_image:
        return live_protocol(run, n or LIVE_2D_N)
    return image_protocol(run.config.data, n or IMAGE_N, IMAGE_SAMPLER)


def measure(run: Run, n: int | None = None) -> dict[str, float | str]:
    """The history columns of one measurement of run under protocol_of(run, n)."""
    return measure_run(run, protocol_of(run, n))[0].row()


def measure_every(steps: int, n: int | None = None) -> Callback:
    """A training callback logging measure() every `steps` steps (on rank 0 under torchrun)."""
    if steps < 1 or (n is not None and n < 2):
        raise ValueError(f"measure every {steps!r} steps with {n!r} samples is out of range; allowed: integers, "
                         f"steps >= 1 and samples >= 2")

    def callback(trainer: Trainer, info: StepInfo) -> None:
        if info.step % steps == 0 and distributed.is_main():
            trainer.log(**measure(trainer.as_run(), n))
    return callback


def label_legacy(history: pd.DataFrame) -> pd.DataFrame:
    """Rows with a quality number but no protocol get the LEGACY name of what they were (fid_n says their n)."""
    history = history.copy()
    if "protocol" not in history:
        history["protocol"] = pd.Series(pd.NA, index=history.index, dtype=object)
    for metric, name in LEGACY.items():
        if metric in history:
            old = history[metric].notna() & history["protocol"].isna()
            n = history.get("fid_n", pd.Series(0, index=history.index)).fillna(0).astype(int)
            history.loc[old, "protocol"] = [name.format(n=k) for k in n[old]]
    return history


def remeasure(run_dir: str | Path, n: int | None = None) -> dict[str, float | str]:
    """Label a run folder's legacy measurements and append one measurement under protocol_of at its final step
    (a row of its own: step, protocol and the numbers); returns that row."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    row = {"step": run.step, **measure(run, n)}
    path = run_dir / METRICS
    history = label_legacy(pd.read_csv(path)) if path.is_file() else pd.DataFrame()
    history = pd.concat([history, pd.DataFrame([row])], ignore_index=True)
    atomic_write(path, lambda tmp: history.to_csv(tmp, index=False))
    return row



def measure_likelihood(run_dir: str | Path, n: int | None = None, probes: int = 1, seed: int = 0) -> dict:
    """The model's likelihood of held-out data at its final step (metrics.likelihood: 2D, NLL in nats of n fresh
    true points beside the true density's; images, bits/dim of n held-out test images, Hutchinson with `probes`
    probes), written to the run folder's likelihood.json with its step; returns that report."""
    from diffusion.metrics.likelihood import nll_report_2d, nll_report_images   # torchdiffeq: only when asked
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    report = nll_report_images(run, n or 200, probes, seed) if run.is_image else nll_report_2d(run, n or 2000, seed)
    report = {"step": run.step, "seed": seed, **report}
    atomic_write(run_dir / LIKELIHOOD, lambda tmp: tmp.write_text(json.dumps(report, indent=1, allow_nan=False)))
    return report
