"""Memory bounded by construction: every config field has a documented limit checked on construction, and a
network's size is counted on the meta device before it is built, so a few bytes of JSON cannot allocate
gigabytes (the hostile upload of issue 14: a 939-byte config with num_classes 250000 and width 4096)."""

import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from conftest import ROOT

from diffusion.config import DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.data.custom import custom_data
from diffusion.models import build_model, check_size, max_parameters, parameter_count
from diffusion.models.model_config import MLPConfig, unet_preset
from diffusion.training import bounded_json

MEMORY_BOUND_MB = 300     # what refusing a hostile config may add to a process's peak memory (it allocated 4 GB)


@pytest.mark.parametrize("make, message", [
    (lambda: MLPConfig(num_classes=250_000), "MLP num_classes=250000 is out of range; allowed: integers from 0 to 1000"),
    (lambda: MLPConfig(width=100_000), "MLP width=100000 is out of range"),
    (lambda: MLPConfig(dropout=float("nan")), "MLP dropout=nan is out of range"),
    (lambda: MLPConfig(activation=["gelu"]), r"MLP activation=\['gelu'\] is unknown; allowed: relu, gelu, silu"),
    (lambda: unet_preset("tiny", num_classes=10**8), "U-Net num_classes=100000000 is out of range"),
    (lambda: unet_preset("tiny", image_size=4096), "U-Net image_size=4096 is out of range"),
    (lambda: unet_preset("tiny", blocks_per_level=1000), "U-Net blocks_per_level=1000 is out of range"),
    (lambda: unet_preset("tiny", channel_mult=(1,) * 50), "channel_mult=.* at most 6 integers"),
    (lambda: unet_preset("tiny", base_width=2048, channel_mult=(1, 4)), r"widths \(2048, 8192\) .* exceed 4096"),
    (lambda: DataConfig("moons", n=10**8), "data n=100000000 is out of range"),
    (lambda: DataConfig(""), "data dataset='' is empty"),
    (lambda: DataConfig("folder:"), "data dataset='folder:' is empty"),
    (lambda: DataConfig("mnist", image_size=0), "data image_size=0 is out of range"),
    (lambda: DataConfig("mnist", classes=(0, 5000)), "data classes=5000 is out of range"),
    (lambda: DataConfig("moons", seed=2**40), "data seed=1099511627776 is out of range"),
    (lambda: TrainConfig(steps=0), "train steps=0 is out of range"),
    (lambda: TrainConfig(lr=float("inf")), "train lr=inf is out of range"),
    (lambda: TrainConfig(seed=-1), "train seed=-1 is out of range"),
    (lambda: ScheduleConfig(zero_terminal_snr="yes"), "zero_terminal_snr='yes' must be true or false"),
])
def test_every_field_is_bounded_on_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _sections(**overrides) -> dict:
    d = RunConfig().to_dict()
    d.update(overrides)
    return d


@pytest.mark.parametrize("raw, message", [
    (_sections(data="moons"), "config section 'data' must be an object of settings, got str"),
    (_sections(train=[1, 2]), "config section 'train' must be an object of settings, got list"),
    (_sections(model={"kind": "mlp", "width": 64, "evil": 1}), r"unknown settings \['evil'\] in config section 'model'"),
    (_sections(model="mlp"), "unknown model kind None"),
    ({"data": {}}, "a run config has the sections data, schedule, model, train"),
    ([1, 2, 3], "a run config has the sections"),
])
def test_a_config_read_from_json_is_refused_in_one_line(raw, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(raw)


def test_round_trip_still_works():
    config = RunConfig(data=DataConfig("mnist", image_size=16, classes=(0, 1)), model=unet_preset("tiny", num_classes=2))
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_parameters_are_counted_on_the_meta_device_and_bounded():
    small = MLPConfig()
    assert parameter_count(small) == sum(p.numel() for p in build_model(small).parameters())
    huge = MLPConfig(width=4096, depth=32, num_classes=1000)       # every field in range, 537 M parameters
    assert parameter_count(huge) > max_parameters()
    with pytest.raises(ValueError, match=r"this model has 5\d\d,\d{3},\d{3} parameters; allowed: at most 100,000,000"):
        build_model(huge)
    tiny = unet_preset("tiny")
    assert check_size(tiny) == sum(p.numel() for p in build_model(tiny).parameters()) == 177_089


def test_the_parameter_bound_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DIFFUSION_MAX_PARAMETERS", "1000")
    with pytest.raises(ValueError, match="allowed: at most 1,000 .*DIFFUSION_MAX_PARAMETERS"):
        build_model(MLPConfig())


REFUSE_HUGE = """
import resource, sys
from diffusion.models import build_model
from diffusion.models.model_config import MLPConfig
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    build_model(MLPConfig(width=4096, depth=32, num_classes=1000))
except ValueError as e:
    print("refused:", e)
print("grew_mb", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_refusing_a_huge_model_allocates_nothing():
    """In a fresh process: the peak memory grows by less than MEMORY_BOUND_MB (building it would take 2 GB)."""
    done = subprocess.run([sys.executable, "-c", REFUSE_HUGE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "refused: this model has" in done.stdout, done.stderr
    grew = float(done.stdout.split("grew_mb")[1])
    assert grew < MEMORY_BOUND_MB


def _peak_mb(work) -> float:
    """Peak Python allocations of work() in MB (tracemalloc)."""
    tracemalloc.start()
    try:
        work()
    except ValueError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def test_json_arrays_are_counted_while_parsed_not_after():
    """Under the size bound, 150,000 custom points (900 kB): refused at item 5,001, before the list is built; the
    standard parse builds all of it first (~10x the memory)."""
    text = json.dumps({"data": {"points": [[0, 0]] * 150_000}}, separators=(",", ":"))
    assert len(text) < bounded_json.MAX_CONFIG_BYTES
    with pytest.raises(ValueError, match="config.json holds an array of more than 5,000 items; allowed: at most 5,000"):
        bounded_json.loads(text, "config.json")
    bounded, plain = _peak_mb(lambda: bounded_json.loads(text, "config.json")), _peak_mb(lambda: json.loads(text))
    assert bounded < 3 and plain > 10, (bounded, plain)
    with pytest.raises(ValueError, match="holds an object of more than 5,000 items"):
        bounded_json.loads(json.dumps({str(i): i for i in range(6000)}), "config.json")
    with pytest.raises(ValueError, match="config.json is nested more than 16 levels deep; allowed: at most 16"):
        bounded_json.loads("[" * 10_000 + "]" * 10_000, "config.json")
    with pytest.raises(ValueError, match="config.json has 1,000,001 bytes; allowed: at most 1,000,000"):
        bounded_json.loads(" " * 1_000_001, "config.json")
    with pytest.raises(json.JSONDecodeError):
        bounded_json.loads("{not json", "config.json")


def test_the_largest_legitimate_config_reads_back_the_same(tmp_path):
    """A run config with 5,000 labelled custom points, as Trainer.save writes it (indent 2), is well within the
    bounds and parses to what json.loads gives."""
    rng = np.random.default_rng(0)
    data = custom_data("big", rng.normal(size=(5000, 2)) * 1e6, rng.integers(0, 10, 5000))
    text = json.dumps(RunConfig(data=data).to_dict(), indent=2)
    assert len(text) < bounded_json.MAX_CONFIG_BYTES / 2
    assert bounded_json.loads(text, "config.json") == json.loads(text)
    assert RunConfig.from_dict(bounded_json.loads(text, "config.json")).data == data
