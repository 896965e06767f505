"""Re-measure finished run folders under the protocol: label the rows of metrics.csv measured before it existed
(old·...), then add one measurement at each run's final step (diffusion.metrics.measure.remeasure) and print it.

    nice -n 10 python benchmarks/remeasure.py checkpoints/mnist16-cond [more folders] [--n 500] [--threads 1]
        [--likelihood [--probes 1]]

2D runs: 1,000 DDIM-50 samples against 1,000 fresh true points; image runs: n (500) DDIM-50 samples against n
held-out images on the dataset classifier's features (n capped by the data); the floor at the same n.
--likelihood measures instead the model's likelihood of held-out data (2D: NLL in nats of 2,000 fresh true points beside
the true density's; images: bits/dim of 200 held-out test images) into the folder's likelihood.json, every run's ODE
ending at the same noise level (sigma 0.01, metrics.likelihood.END_SIGMA).
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion.explore.catalog import likelihood_end  # noqa: E402
from diffusion.metrics.evaluation import row_sentences  # noqa: E402
from diffusion.metrics.measure import measure_likelihood, remeasure  # noqa: E402
from diffusion.metrics.points2d import POINT_METRICS  # noqa: E402

LABELS = {**{m.name: m.label for m in POINT_METRICS.values()}, "fid": "FID", "accuracy": "label accuracy"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--n", type=int, help="samples per measurement (default: images 500, 2D 1000); "
                        "--likelihood: held-out points or images (default: 2D 2000, images 200)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--likelihood", action="store_true", help="measure the likelihood instead (likelihood.json)")
    parser.add_argument("--probes", type=int, default=1, help="images: Hutchinson probes per image")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for folder in args.folders:
        start = time.perf_counter()
        if not args.likelihood:
            row = remeasure(folder, args.n)
            print(f"{folder} step {row['step']}: n = {row['n']}, {row['protocol']}: {row_sentences(row, LABELS)} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        else:
            report = measure_likelihood(folder, args.n, args.probes)
            value = report.get("bits_per_dim") or report["nll"]
            unit = "bits/dim" if "bits_per_dim" in report else "nats"
            floor = f", true density {report['true_nll']['mean']:.3f}" if report.get("true_nll") else ""
            print(f"{folder} likelihood: {value['mean']:.3f} +- {value['se']:.3f} {unit} (se) of n = {report['n']} "
                  f"held-out{floor}, ODE from {likelihood_end(report)} ({time.perf_counter() - start:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
