"""The app under load (issues 14 and 20), in headless Chromium against `streamlit run` on 127.0.0.1:

    python benchmarks/bench_load.py [--visitors 8] [--slots 2] [--overviews 3] [--server-cpus 0 --browser-cpus 1]
                                    [--visitors-nice 19] [--skip-load | --skip-hostile]

Load: eight visitors press Train on the 2D page: the first `slots` for a long job (120 s), the others for 100 steps.
The server is limited to `slots` jobs ($DIFFUSION_MAX_JOBS); its job threads run $DIFFUSION_JOB_NICE below its page
threads. Reported: the most jobs the server ran at once (its job log), the queue positions the waiting pages showed,
a new visitor's first page (the Overview, to its heading) before anyone trains (idle) and while the jobs run
(loaded), the seconds from closing a training visitor's page to the end of its job, and the whole run's time.
--server-cpus / --browser-cpus keep the browsers off the server's cores (visitors' browsers are on their own machines);
--visitors-nice N runs the training visitors' browser and Playwright driver N steps nicer than the new visitor's (a
process, driver and browser of its own), so that on a 2-core machine the new visitor does not queue behind eight
others on its core.

Hostile uploads: on a fresh server, one visitor's 2D page uploads the checkpoints and CSV files of
tests/hostile_uploads.py (the 60 MB config of 10,000,000 points, 100,000 points under the size bound, the 939-byte
config asking for 250,000 classes, the CSV near the largest float); reported: the seconds from pressing the button to
the error box, and the server's peak resident memory (VmHWM) after each, against its peak with the page open.
The drivers are tests/load_visitors.py (tests/test_load.py runs a small version).
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hostile_uploads import OVERFLOW_CSV, good_checkpoint, hostile_zips  # noqa: E402
from load_visitors import run_hostile, run_load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--overviews", type=int, default=3)
    parser.add_argument("--server-cpus", type=int, nargs="*", default=None)
    parser.add_argument("--browser-cpus", type=int, nargs="*", default=None)
    parser.add_argument("--visitors-nice", type=int, default=0)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-hostile", action="store_true")
    args = parser.parse_args()
    if not args.skip_hostile:
        hostile()
    if not args.skip_load:
        load(args)


def load(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        r = run_load(args.visitors, args.slots, Path(tmp) / "jobs.jsonl", args.overviews,
                     server_cpus=set(args.server_cpus or ()) or None, browser_cpus=set(args.browser_cpus or ()) or None,
                     visitors_nice=args.visitors_nice)
    cpus = (f"server {args.server_cpus}, browsers {args.browser_cpus}" if args.server_cpus or args.browser_cpus
            else "shared") + (f"; visitors' browser at nice +{args.visitors_nice}" if args.visitors_nice else "")
    print("| visitors | job slots | most jobs at once | queue positions shown | first page, new visitor, idle (s) | "
          "the same while the jobs run (s) | server's cores meanwhile: page threads / jobs | page closed -> job ended (s) | "
          "jobs started | short jobs done | whole run (s) | cores | load average (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {r.visitors} | {r.slots} | {r.max_running} | {', '.join(map(str, sorted(set(r.positions))))} | "
          f"{_times(r.overview_before)} | {_times(r.overview_seconds)} | {r.server_cores[0]:.2f} / "
          f"{r.server_cores[1]:.2f} | {r.close_to_stop:.1f} | {r.started} | "
          f"{r.finished_short} | {r.seconds:.0f} | {cpus} | {os.getloadavg()[0]:.1f} |")


def hostile() -> None:
    zips, csvs = hostile_zips(good_checkpoint()), {"CSV of 20 points near the largest float": OVERFLOW_CSV}
    before, results = run_hostile(zips, csvs)
    print(f"Server peak memory (VmHWM) with the 2D page open: {before:,.0f} MB")
    print("| upload | size (bytes) | button -> error box (s) | server peak memory after (MB) | growth (MB) |")
    print("|---|---|---|---|---|")
    sizes = {name: len(data) for name, data in {**zips, **csvs}.items()}
    for r in results:
        print(f"| {r.upload} | {sizes[r.upload]:,} | {r.seconds:.2f} | {r.peak_mb:,.0f} | {r.peak_mb - before:+,.0f} |")
    print(f"load average (1 min): {os.getloadavg()[0]:.1f}")


def _times(seconds: list[float]) -> str:
    return f"{', '.join(f'{s:.2f}' for s in seconds)} (median {statistics.median(seconds):.2f})"


if __name__ == "__main__":
    main()
