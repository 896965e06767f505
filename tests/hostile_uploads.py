"""What a hostile visitor uploads, built in memory: checkpoint zips with oversized or out-of-range configs, and
CSV files of points near the largest float. Shared by tests/test_app_public.py (each refused, in a fresh process,
within bounded time and memory) and benchmarks/bench_load.py (the server's peak memory over all of them)."""

import io
import json
import zipfile

from diffusion.config import RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.training.trainer import Trainer
from ui.jobs.checkpoint_io import zip_trainer

HOSTILE_CONFIG = {**RunConfig().to_dict(), "model": {"kind": "mlp", "width": 4096, "num_classes": 250_000}}
OVERFLOW_CSV = b"1.26e307,-1.32e306\n" * 10 + b"-1.1e307,1.2e306\n" * 10   # issue 20: the variance overflowed


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def members(good: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def good_checkpoint() -> bytes:
    """A real 2D checkpoint zip (10 steps of the default run), as the page's Export gives it."""
    trainer = Trainer(RunConfig(train=TrainConfig(steps=10)), load_data(RunConfig().data).x)
    trainer.run()
    return zip_trainer(trainer)


def huge_config_zip(good: bytes, points: int = 10_000_000) -> bytes:
    """Issue 20's upload: a checkpoint whose config.json carries `points` custom points (10,000,000: 60 MB of
    JSON, ~1 MB zipped with its weights); parsed whole it took 16 s and 1 GB of server memory."""
    files = members(good)
    config = json.loads(files["config.json"])
    config["data"].update(dataset="custom:huge:0123456789", points="POINTS")
    text = json.dumps(config).replace('"POINTS"', "[" + "[1,0]," * (points - 1) + "[1,0]]")
    return zip_of({**files, "config.json": text.encode()})


def long_history_zip(good: bytes, rows: int, row: str) -> bytes:
    """A checkpoint whose metrics.csv logs `rows` steps as `row` (a 36 MB history took a minute and 1.3 GB to read)."""
    return zip_of({**members(good), "metrics.csv": ("step,loss,lr\n" + row * rows).encode()})


def hostile_zips(good: bytes) -> dict[str, bytes]:
    """name -> checkpoint zip a server must refuse in bounded time and memory."""
    return {"60 MB config (10,000,000 points)": huge_config_zip(good),
            "100,000 points under the size bound": huge_config_zip(good, 100_000),
            "939-byte config asking for 250,000 classes": zip_of({"config.json": json.dumps(HOSTILE_CONFIG).encode()}),
            "36 MB history (3,000,000 rows)": long_history_zip(good, 3_000_000, "10,0.5,0.001\n"),
            "1,300,000 history rows under the size bound": long_history_zip(good, 1_300_000, "1,0.5,0.001\n")}
