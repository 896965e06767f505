"""What the job threads' niceness buys the page threads, without browsers: in one process, a page-like pure-Python
task (drawing a page is Python work under the GIL) timed on the main thread, alone and while `--jobs` threads train
the default 2D model, with the job threads at the pages' priority (+0) and JOB_NICE below it (ui.scheduler):

    python benchmarks/bench_priority.py [--jobs 2] [--rounds 2]

Reported: the median page task (s) in each setting, and the load average. benchmarks/bench_load.py measures the same
through real browsers and a real server.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from diffusion.config import RunConfig  # noqa: E402
from diffusion.data import load_data  # noqa: E402
from diffusion.training.trainer import Trainer  # noqa: E402
from ui.jobs.scheduler import JOB_NICE, lower_priority  # noqa: E402


def page_task() -> float:
    """Seconds of a fixed pure-Python computation (about 1 s on an idle core)."""
    start, total = time.perf_counter(), 0
    for i in range(3_000_000):
        total += i * i
    return time.perf_counter() - start


def train(stop: threading.Event, nice: int) -> None:
    """Train the default 2D model until stop, nice steps below this process's priority (as a job's thread)."""
    os.environ["DIFFUSION_JOB_NICE"] = str(nice)
    lower_priority()
    trainer = Trainer(RunConfig(), load_data(RunConfig().data).x)
    while not stop.is_set():
        trainer.train_step()


def with_jobs(jobs: int, nice: int, repeats: int = 3) -> list[float]:
    stop = threading.Event()
    threads = [threading.Thread(target=train, args=(stop, nice)) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)                                   # the trainers built and stepping
    times = [page_task() for _ in range(repeats)]
    stop.set()
    for thread in threads:
        thread.join()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    alone = [page_task() for _ in range(3)]
    times: dict[int, list[float]] = {0: [], JOB_NICE: []}
    for _ in range(args.rounds):                      # interleaved: the machine's load drifts between them
        for nice in times:
            times[nice] += with_jobs(args.jobs, nice)
    print(f"| page task alone (s) | with {args.jobs} training jobs at +0 (s) | with them at +{JOB_NICE} (s) | "
          "load average (1 min) |")
    print("|---|---|---|---|")
    print(f"| {statistics.median(alone):.2f} | {statistics.median(times[0]):.2f} | "
          f"{statistics.median(times[JOB_NICE]):.2f} | {os.getloadavg()[0]:.1f} |")


if __name__ == "__main__":
    main()
