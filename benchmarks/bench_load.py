"""The app under load (issue 14), in headless Chromium against `streamlit run` on 127.0.0.1:

    python benchmarks/bench_load.py [--visitors 8] [--slots 2] [--overviews 3]

Eight visitors press Train on the 2D page: the first `slots` for a long job (120 s), the others for
100 steps. The server is limited to `slots` jobs ($DIFFUSION_MAX_JOBS). Reported: the most jobs the server ran at
once (its job log), the queue positions the waiting pages showed, new visitors' Overview render times while the
jobs run, the seconds from closing a training visitor's page to the end of its job, and the whole run's time.
The driver is tests/load_visitors.py (tests/test_load.py runs a small version).
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from load_visitors import run_load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--overviews", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run_load(args.visitors, args.slots, Path(tmp) / "jobs.jsonl", args.overviews)
    load = os.getloadavg()[0]
    print("| visitors | job slots | most jobs at once | queue positions shown | Overview, new visitor, before "
          "Train (s) | the same while the jobs run (s) | page closed -> job ended (s) | jobs started | short jobs "
          "done | whole run (s) | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {r.visitors} | {r.slots} | {r.max_running} | {', '.join(map(str, sorted(set(r.positions))))} | "
          f"{_times(r.overview_before)} | {_times(r.overview_seconds)} | {r.close_to_stop:.1f} | {r.started} | "
          f"{r.finished_short} | {r.seconds:.0f} | {load:.1f} |")


def _times(seconds: list[float]) -> str:
    return f"{', '.join(f'{s:.2f}' for s in seconds)} (median {statistics.median(seconds):.2f})"


if __name__ == "__main__":
    main()
