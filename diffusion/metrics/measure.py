"""Quality measured while a run trains, as columns of its history (and so of metrics.csv): W1, W2 and both KLs
against the fixed reference for 2D runs; for images, the FID on the dataset classifier's features of n samples
against n training images (fid_n says n; fid_floor is the FID of two disjoint halves of those real images) and,
for conditional runs, the share of samples the classifier reads as the requested label."""

from diffusion.metrics.evaluation import evaluate_run_images, live_metrics
from diffusion.sampling.config import SamplerConfig
from diffusion.sampling.run import Run
from diffusion.training import distributed
from diffusion.training.trainer import Callback, StepInfo, Trainer

IMAGE_SAMPLER = SamplerConfig("ddim", 50)


def measure(run: Run, n: int = 500, seed: int = 0) -> dict[str, float]:
    """The quality columns of one measurement (n: image samples; 2D runs use evaluation.METRIC_N points)."""
    if not run.is_image:
        return live_metrics(run, seed)
    report = evaluate_run_images(run, n, IMAGE_SAMPLER, ("fid",), seed=seed)
    row = {"fid": report["metrics"]["fid"], "fid_n": float(n), "fid_floor": report["floor"]["fid"]}
    if "label_accuracy" in report:
        row["accuracy"] = report["label_accuracy"]
    return row


def measure_every(steps: int, n: int = 500) -> Callback:
    """A training callback logging measure() every `steps` steps (on rank 0 under torchrun)."""
    if steps < 1 or n < 2:
        raise ValueError(f"measure every {steps!r} steps with {n!r} samples is out of range; allowed: integers, "
                         f"steps >= 1 and samples >= 2")

    def callback(trainer: Trainer, info: StepInfo) -> None:
        if info.step % steps == 0 and distributed.is_main():
            trainer.log(**measure(trainer.as_run(), n))  # seed 0: one noise bank for all
    return callback
