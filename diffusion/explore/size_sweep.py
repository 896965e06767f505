"""The training-set-size sweep (Kadkhodaie et al. 2024): the same small U-Net trained on N = 10 ... 1,000 images of one
Fashion-MNIST class (the shipped runs of role size-sweep in checkpoints/shipped.json, SWEEP_FOLDERS), and for each N its samples beside their nearest
training images, the memorisation measure (explore.analytic_comparison: d1 and d1 over held-out d1, against the run's
own N images) and FID under the measurement protocol against held-out images of the class, with its floor (the
class's full training set, not the N images: at N = 10 a floor of 10 images would say nothing).
"""

from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from diffusion.explore.analytic_comparison import SampleSet, memorisation
from diffusion.explore.image_experiments import holdout_images, training_set
from diffusion.metrics.evaluation import Result, measure_samples
from diffusion.metrics.protocol import image_protocol
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run
from diffusion.training.checkpoints import CHECKPOINTS_DIR, load_run, read_config
from diffusion.training.shipped import shipped_runs

SWEEP_FOLDERS = dict(sorted((read_config(CHECKPOINTS_DIR / r.folder).data.n, r.folder)      # N -> folder, by N
                            for r in shipped_runs().values() if r.role == "size-sweep"))
SWEEP_N = tuple(SWEEP_FOLDERS)
SWEEP_SAMPLER = SamplerConfig("ddim", steps=20)   # the runs are tiny; 20 DDIM steps keep the page within a minute


def sweep_runs(root: str | Path = CHECKPOINTS_DIR) -> dict[int, Run]:
    """The shipped sweep runs found under root, by N (absent folders are skipped)."""
    root = Path(root)
    return {n: load_run(root / f) for n, f in SWEEP_FOLDERS.items() if (root / f / "config.json").is_file()}


def training_size(run: Run) -> int:
    """N: the number of images the run was trained on."""
    return len(training_set(run.config.data).x)


def sweep_point(run: Run, n: int = 500, sampler: SamplerConfig = SWEEP_SAMPLER, seed: int = 0
                ) -> tuple[SampleSet, Result]:
    """n samples of a sweep run measured against its own N training images (memorisation) and, by FID, against the
    class's held-out images with the floor of the class's full training set."""
    data = run.config.data
    samples = run.sample(n, sampler, seed=seed)
    memo = memorisation(samples, training_set(data).x, holdout_images(data))
    whole_class = replace(data, n=None)
    result = measure_samples(samples, image_protocol(whole_class, n, sampler, seed), whole_class)
    return memo, result


def sweep_row(N: int, memo: SampleSet, result: Result) -> dict:
    """One row of the sweep table: N, the memorisation measure (medians with their order-statistic intervals, copies
    with Wilson's) and FID with their intervals and floor."""
    return {"N": N, **memo.columns(), **{k: v for k, v in result.row().items() if k.startswith("fid")},
            "protocol": result.protocol.name}


def sweep_table(runs: dict[int, Run], n: int = 500, sampler: SamplerConfig = SWEEP_SAMPLER, seed: int = 0
                ) -> tuple[pd.DataFrame, dict[int, SampleSet]]:
    """The sweep table (one sweep_row per N) and each N's samples with their nearest training images."""
    points = {N: sweep_point(run, n, sampler, seed) for N, run in sorted(runs.items())}
    return pd.DataFrame([sweep_row(N, *p) for N, p in points.items()]), {N: p[0] for N, p in points.items()}


def nearest_images(run: Run, memo: SampleSet) -> torch.Tensor:
    """The nearest training image of each sample (n, C, H, W)."""
    return training_set(run.config.data).x[memo.nearest]
