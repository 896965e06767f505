"""Start the app with `streamlit run` on 127.0.0.1 and open it in Debian's headless Chromium (Playwright never
downloads a browser here). Shared by the browser test and benchmarks/bench_app.py."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def proc_stat(path: str | Path) -> list[str]:
    """The fields of a /proc/PID/stat or /proc/PID/task/TID/stat file from field 3 (the state) on (proc(5)): index
    i is field i + 3, whatever the command's name holds."""
    return Path(path).read_text().rsplit(")", 1)[1].split()


def cpu_seconds(fields: list[str]) -> float:
    """User + system CPU time in proc_stat's fields (fields 14 and 15): a process's covers all its threads, ended
    ones included."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(timeout: float = 60, env: dict[str, str] | None = None, cpus: set[int] | None = None) -> Iterator[str]:
    """The app's URL while `streamlit run app.py` serves it (env: extra environment variables, e.g. limits)."""
    with app_server(timeout, env, cpus) as (url, _):
        yield url


@contextmanager
def app_server(timeout: float = 60, env: dict[str, str] | None = None, cpus: set[int] | None = None
               ) -> Iterator[tuple[str, subprocess.Popen]]:
    """(URL, server process) while `streamlit run app.py` serves the app, started as the README starts it (the
    settings in .streamlit/config.toml) on a free port of 127.0.0.1; env: extra environment variables; cpus: the
    cores the server may run on (all by default)."""
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
           "127.0.0.1", "--server.port", str(port)]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **(env or {})},
                              preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + timeout
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("streamlit did not start") from None
                time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=20)


@contextmanager
def chromium_page(playwright, width: int = 1400, height: int = 1000):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser.new_page(viewport={"width": width, "height": height})
    finally:
        browser.close()
