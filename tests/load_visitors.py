"""Issue 14's load test: visitors of a real `streamlit run` server on 127.0.0.1, each a headless Chromium page, all
pressing Train on the 2D page (tests/test_load.py runs a small one, benchmarks/bench_load.py the full one).

The first `slots` visitors train long jobs (the largest seconds budget, 120 s) that fill every slot of the server's
scheduler; the others press Train for short ones (100 steps, the smallest budget) and must queue. Then, while all of them run or wait:
- the server's job log ($DIFFUSION_JOB_LOG: every start and end, with the counts) says how many ran at once;
- the queued pages show their place ("you are 2nd in line; about 40 s");
- new visitors open the Overview, one after the other: the seconds until it renders, each;
- the first long job's page is closed: the seconds until the server ends that job (its slot is free again);
- every short job then finishes ("Done:" on its page).
The server's job threads run $DIFFUSION_JOB_NICE (ui.scheduler.JOB_NICE) below its page threads; the browsers can be
kept off the server's cores (`cpus`), as visitors' browsers are on their own machines.

`run_hostile` uploads hostile files (tests/hostile_uploads.py) through a visitor's page and reads the server's peak
memory (VmHWM) after each refusal.
"""

import json
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from playwright.sync_api import expect, sync_playwright
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, app_server, cpu_seconds, proc_stat

from ui.jobs.scheduler import JOB_NICE

MAIN = "stMainBlockContainer"


@dataclass
class LoadResult:
    visitors: int
    slots: int
    max_running: int           # most jobs the server ran at once (its job log)
    positions: list[int]       # queue positions the waiting pages showed
    overview_seconds: list[float]  # new visitors' Overview, from navigation to its title, while the jobs run
    overview_before: list[float]   # the same before anyone pressed Train (the pages open): the machine's own speed
    close_to_stop: float       # seconds from closing a training visitor's page to the end of its job
    closed_job_ran: float      # how long that job had trained (far under LONG_SECONDS: the close stopped it)
    started: int               # jobs the server started
    finished_short: int        # short jobs whose page says "Done:"
    seconds: float             # the whole test
    server_cores: tuple[float, float] = (0.0, 0.0)   # while the new visitors' Overviews load with the jobs running:
    # the cores the server's page threads used (every thread but the jobs'), and its job threads (at JOB_NICE)


def _open_training(contexts, url: str) -> list:
    """(page, main block) of the 2D page in each context, navigated together, ready to train."""
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.goto(f"{url}/toy2d", wait_until="commit")
    mains = [page.get_by_test_id(MAIN) for page in pages]
    for main in mains:
        expect(main.get_by_role("heading", name="3. Train")).to_be_visible(timeout=120_000)
    return list(zip(pages, mains))


LONG_SECONDS = 120


def _press_train(main, long: bool) -> None:
    """Train for LONG_SECONDS (the largest seconds budget) or for 100 steps (the smallest budget)."""
    if long:
        main.get_by_text("seconds", exact=True).click()
        slider = main.locator('input[type=range][aria-label="Seconds"]')
        expect(slider).to_be_visible(timeout=30_000)
    else:
        slider = main.locator('input[type=range][aria-label="Steps"]')
    slider.focus()
    slider.press("End" if long else "Home")
    expect(slider).to_have_value(str(LONG_SECONDS) if long else "100", timeout=30_000)
    main.get_by_role("button", name="Train", exact=True).first.click()     # section 3 (guidance has its own)


def _events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _positions(mains) -> list[int]:
    seen = []
    for main in mains:
        text = " ".join(main.locator("[data-testid=stProgress]").all_inner_texts())
        seen += [int(p) for p in re.findall(r"you are (\d+)\w\w in line", text)]
    return seen


def _overview_seconds(context, url: str) -> float:
    page = context.new_page()
    start = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=60_000)      # the time that counts: until the heading is drawn
    expect(page.get_by_test_id(MAIN).get_by_role("heading").first).to_be_visible(timeout=60_000)
    seconds = time.perf_counter() - start
    page.close()
    return seconds


def _newcomer_pages(url: str, n: int) -> list[float]:
    """_overview_seconds of `n` new visitors, one after the other, in a browser and a Playwright driver of their own
    (run_load runs this in a process of its own: the training visitors' driver, which relays their pages' traffic,
    can then run nicer than the newcomers')."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return [_overview_seconds(browser.new_context(), url) for _ in range(n)]
        finally:
            browser.close()


def _cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process, all its threads, ended ones included, and of its living threads at JOB_NICE
    (field 19 of each /proc/PID/task/TID/stat)."""
    jobs = 0.0
    for stat in Path(f"/proc/{pid}/task").glob("[0-9]*/stat"):
        try:
            fields = proc_stat(stat)
        except OSError:                                             # the thread ended meanwhile
            continue
        jobs += cpu_seconds(fields) if int(fields[16]) == JOB_NICE else 0.0
    return cpu_seconds(proc_stat(f"/proc/{pid}/stat")), jobs


def _descendants() -> set[int]:
    """Every process started by this one, directly or not (Linux /proc)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def _renice(pids: set[int], nice: int) -> None:
    """Every thread of `pids` at `nice` (Linux sets niceness per thread; the processes they fork inherit it)."""
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("[0-9]*"):
            try:
                os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
            except (ProcessLookupError, PermissionError):
                pass


@contextmanager
def _on_cpus(cpus: set[int] | None):
    """This process (the Playwright driver and the browsers it starts) on `cpus` while the block runs."""
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_load(visitors: int, slots: int, log: Path, overviews: int = 2, timeout: float = 300,
             server_cpus: set[int] | None = None, browser_cpus: set[int] | None = None,
             visitors_nice: int = 0) -> LoadResult:
    """The load test above on a fresh server limited to `slots` jobs; every job is logged to `log`. server_cpus,
    browser_cpus: the cores each side may use (all by default). visitors_nice > 0: the training visitors' browser
    runs that much nicer than the new visitors' (a browser of their own, at this process's priority), so that on a
    machine with few cores the new visitor's browser does not wait behind eight others, as on their own machine:
    the new visitors then have a process, a Playwright driver and a browser of their own, and the training visitors'
    driver (which relays their pages' traffic) runs as nice as their browser."""
    start = time.perf_counter()
    env = {"DIFFUSION_MAX_JOBS": str(slots), "DIFFUSION_JOB_LOG": str(log), "DIFFUSION_JOB_NICE": str(JOB_NICE)}
    own_driver = ProcessPoolExecutor(1, multiprocessing.get_context("spawn")) if visitors_nice else nullcontext()
    with app_server(env=env, cpus=server_cpus) as (url, server), _on_cpus(browser_cpus), own_driver as newcomers:
        server_side = _descendants()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            if visitors_nice:     # the visitors' driver and browser (the newcomers' process starts later, at nice 0)
                _renice(_descendants() - server_side, min(19, os.getpriority(os.PRIO_PROCESS, 0) + visitors_nice))
            result = _load(browser, newcomers, url, server, visitors, slots, log, overviews, timeout)
    return replace(result, seconds=time.perf_counter() - start)


def _load(browser, newcomers, url: str, server, visitors: int, slots: int, log: Path, overviews: int,
          timeout: float) -> LoadResult:
    """run_load's steps, its visitors in `browser`, its new visitors in the process `newcomers` (None: in `browser`)."""
    def new_visitors() -> list[float]:
        if newcomers:
            return newcomers.submit(_newcomer_pages, url, overviews).result()
        return [_overview_seconds(browser.new_context(), url) for _ in range(overviews)]

    try:
        contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(visitors)]
        opened = _open_training(contexts, url)
        before = new_visitors()
        for i, (_, main) in enumerate(opened[:slots]):          # fill every slot with a long job
            _press_train(main, True)
            _wait_for(lambda i=i: sum(e["event"] == "started" for e in _events(log)) == i + 1, 60,
                      f"long job {i + 1} to start")
        short = [main for _, main in opened[slots:]]
        for main in short:
            _press_train(main, False)
        _wait_for(lambda: len(_positions(short)) == len(short), 60, "the waiting pages to show their places")
        positions = _positions(short)
        (total, jobs), wall = _cpu(server.pid), time.perf_counter()
        overview = new_visitors()
        (total_after, jobs_after), wall = _cpu(server.pid), time.perf_counter() - wall
        job_cores = (jobs_after - jobs) / wall
        server_cores = ((total_after - total) / wall - job_cores, job_cores)
        first_job = next(e["job"] for e in _events(log) if e["event"] == "started")
        closed_at = time.time()
        opened[0][0].close()
        contexts[0].close()
        _wait_for(lambda: any(e["job"] == first_job and e["event"] == "finished" for e in _events(log)), 30,
                  "the closed visitor's job to end")
        ends = {e["event"]: e["time"] for e in _events(log) if e["job"] == first_job}
        for main in short:
            expect(main.get_by_text("Done:", exact=False)).to_be_visible(timeout=timeout * 1000)
        events = _events(log)
    finally:
        browser.close()
    return LoadResult(visitors, slots, max(e["running"] for e in events), positions, overview, before,
                      ends["finished"] - closed_at, ends["finished"] - ends["started"],
                      sum(e["event"] == "started" for e in events), len(short), 0.0, server_cores)


@dataclass
class HostileResult:
    upload: str
    seconds: float             # from pressing the button to the error box
    peak_mb: float             # the server's peak resident memory (VmHWM) after the refusal


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory so far, MB (Linux: VmHWM)."""
    line = next(li for li in Path(f"/proc/{pid}/status").read_text().splitlines() if li.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _refused(main, press: str, error: str) -> float:
    """Seconds from pressing the button named `press` to the error box starting with `error`."""
    start = time.perf_counter()
    main.get_by_role("button", name=press).click()
    expect(main.get_by_text(error)).to_be_visible(timeout=120_000)
    return time.perf_counter() - start


def run_hostile(zips: dict[str, bytes], csvs: dict[str, bytes]) -> tuple[float, list[HostileResult]]:
    """(the server's peak memory with the 2D page open, MB; one HostileResult per upload): each checkpoint zip
    through the page's Load button, each CSV through "Bring your own distribution", on one fresh server."""
    with app_server() as (url, server), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{url}/toy2d")
            main = page.get_by_test_id(MAIN)
            expect(main.get_by_role("heading", name="8. Export and import")).to_be_visible(timeout=180_000)
            before, results = _peak_mb(server.pid), []
            uploader = main.get_by_test_id("stFileUploader").filter(has_text="Load a checkpoint")
            for name, data in zips.items():
                uploader.locator("input[type=file]").set_input_files(
                    files=[{"name": "run.zip", "mimeType": "application/zip", "buffer": data}])
                expect(main.get_by_text("Could not load the checkpoint")).to_be_hidden(timeout=60_000)
                expect(uploader.get_by_text("run.zip")).to_be_visible(timeout=60_000)
                seconds = _refused(main, "Load checkpoint", "Could not load the checkpoint")
                results.append(HostileResult(name, seconds, _peak_mb(server.pid)))
            main.get_by_text("Bring your own distribution").click()
            main.get_by_text("CSV of points").click()
            csv_uploader = main.get_by_test_id("stFileUploader").filter(has_text="CSV: one point per row")
            for name, data in csvs.items():
                csv_uploader.locator("input[type=file]").set_input_files(
                    files=[{"name": "points.csv", "mimeType": "text/csv", "buffer": data}])
                expect(csv_uploader.get_by_text("points.csv")).to_be_visible(timeout=60_000)
                seconds = _refused(main, "Use this distribution", "Could not use this distribution")
                results.append(HostileResult(name, seconds, _peak_mb(server.pid)))
        finally:
            browser.close()
    return before, results
