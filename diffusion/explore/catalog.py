"""A catalog of runs for comparison: run folders found on disk, read cheaply (config.json, metrics.csv, the
likelihood.json a likelihood measurement left, and the step in ema.safetensors' header; no weights), and in-memory
Runs, each summarised as one row of a table.

A folder that cannot be read (corrupt, half-written) is listed with its error; reading never raises.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors import safe_open

from diffusion.config import RunConfig
from diffusion.explore.toy2d_experiments import METRICS as METRICS_2D
from diffusion.explore.toy2d_experiments import loss_frame
from diffusion.metrics.intervals import normal
from diffusion.metrics.protocol import END_SIGMA
from diffusion.models import parameter_count
from diffusion.sampling.run import Run
from diffusion.training import bounded_json
from diffusion.training.checkpoints import CHECKPOINTS_DIR, CONFIG, EMA, LIKELIHOOD, METRICS
from diffusion.training.shipped import shipped_runs

SKIPPED = ("classifiers",)       # folders under CHECKPOINTS_DIR that hold feature networks, not diffusion runs
SHIPPED_RUNS = tuple(run.folder for run in shipped_runs().values()   # the shipped models' folders (checkpoints/shipped.json;
                     if run.role == "model")                          # the size sweep's runs are measured by its section)
LOSS_WINDOW = 100                # final loss: mean of the last LOSS_WINDOW logged losses (one is noisy)
METRIC_ORDER = (*METRICS_2D, "nll", "fid", "kid", "accuracy")   # quality columns diffusion.metrics.measure logs
LIKELIHOOD_METRICS = ("bits_per_dim", "model_nll")   # columns of likelihood.json (likelihood_columns)
QUALIFIERS = ("protocol", "n", "fid_n")   # say how a number was measured (fid_n: its n in rows of old runs)
SUFFIXES = ("_low", "_high", "_floor", "_floor_low", "_floor_high")   # a number's interval and its floor's
NOT_METRICS = ("step", "time", "loss", "lr")
MAX_DEPTH = 3                    # how deep discover looks for run folders below its root
MAX_FOLDERS = 2000               # folders discover looks at, at most (a deep scan is bounded)


@dataclass(frozen=True)
class RunSummary:
    """One run as the compare page lists it; error is set (and the rest may be empty) when it cannot be read."""

    name: str
    source: str                  # "shipped", "checkpoints/", "folder" or "session"
    path: str = ""
    error: str = ""
    config: RunConfig | None = None
    step: int = 0
    history: pd.DataFrame = field(default_factory=pd.DataFrame)   # step, time, loss, lr and measured metrics
    device: str = ""             # where it trained ("cpu", "cuda", "cuda x4"); "" when the folder does not say
    likelihood: dict = field(default_factory=dict)   # its likelihood.json (metrics.measure.measure_likelihood), if any

    @property
    def ok(self) -> bool:
        return not self.error


def _subfolders(folder: Path) -> list[Path]:
    """Visible subfolders, sorted, links to folders left out (a scan never leaves its root); none when the folder
    cannot be read."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    except OSError:
        return []


def discover(root: str | Path = CHECKPOINTS_DIR, skip: tuple[str, ...] = SKIPPED) -> list[Path]:
    """Run folders under root (MAX_DEPTH levels and MAX_FOLDERS folders at most): folders holding config.json, and
    leaf folders (half-written runs); the top-level folders named in skip are left out."""
    found: list[Path] = []
    seen = [0]

    def walk(folder: Path, depth: int) -> None:
        for child in _subfolders(folder):
            seen[0] += 1
            if seen[0] > MAX_FOLDERS:
                return
            if depth == 0 and child.name in skip:
                continue
            subfolders = _subfolders(child)
            if (child / CONFIG).is_file() or not subfolders:
                found.append(child)
            elif depth + 1 < MAX_DEPTH:
                walk(child, depth + 1)

    walk(Path(root), 0)
    return found


def folder_runs(path: str | Path) -> list[Path]:
    """The run folders a user-named path stands for: itself if it is one, else the runs below it.

    ValueError naming the path when it does not exist or holds no run."""
    path = Path(path).expanduser().resolve()       # one name per folder, however it was typed
    if not path.is_dir():
        raise ValueError(f"no folder {str(path)!r}; allowed: a run folder (with {CONFIG}) or a folder of run folders")
    if (path / CONFIG).is_file():
        return [path]
    runs = [p for p in discover(path) if (p / CONFIG).is_file()]
    if not runs:
        raise ValueError(f"no run in {str(path)!r}: neither it nor its subfolders hold a {CONFIG}")
    return runs


def _source(path: Path) -> str:
    if path.parent == CHECKPOINTS_DIR:
        return "shipped" if path.name in SHIPPED_RUNS else "checkpoints/"
    return "folder"


def _clean(history: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns (the protocol names kept as text), sorted by step."""
    protocol = history["protocol"].astype(object) if "protocol" in history else None
    history = history.drop(columns="protocol", errors="ignore").apply(pd.to_numeric, errors="coerce")
    if protocol is not None:
        history["protocol"] = protocol.where(protocol.notna(), None)
    return history.sort_values("step", ignore_index=True, kind="stable") if "step" in history else history


def read_folder(path: str | Path, name: str | None = None, source: str | None = None) -> RunSummary:
    """A run folder's summary from its config.json, metrics.csv and the step in its EMA weights' header."""
    path = Path(path)
    name, source = name or path.name, source or _source(path)
    missing = [f for f in (CONFIG, EMA) if not (path / f).is_file()]
    if missing:
        return RunSummary(name, source, str(path), f"incomplete run: missing {', '.join(missing)}")
    try:
        raw = bounded_json.read(path / CONFIG, CONFIG)
        config = RunConfig.from_dict({k: raw[k] for k in ("data", "schedule", "model", "train")})
        with safe_open(str(path / EMA), framework="pt") as f:
            step = int(f.metadata()["step"])
        has_history = (path / METRICS).is_file() and (path / METRICS).stat().st_size > 0
        history = pd.read_csv(path / METRICS) if has_history else pd.DataFrame({"step": []})
        likelihood = bounded_json.read(path / LIKELIHOOD, LIKELIHOOD) if (path / LIKELIHOOD).is_file() else {}
    except Exception as e:  # noqa: BLE001 - any damage (JSON, CSV, safetensors, config values) is reported
        return RunSummary(name, source, str(path), f"unreadable run: {type(e).__name__}: {e}")
    history = _clean(history)
    if "step" not in history:
        return RunSummary(name, source, str(path), f"unreadable run: {METRICS} has no step column")
    return RunSummary(name, source, str(path), "", config, step, history[history["step"] <= step],
                      raw.get("device", ""), likelihood)


def read_run(name: str, run: Run, source: str = "session") -> RunSummary:
    """The summary of an in-memory Run (e.g. one trained in this app session): the row its folder would give."""
    device = next(run.net.parameters()).device.type
    return RunSummary(name, source, "", "", run.config, run.step,
                      _clean(pd.DataFrame(run.history or {"step": []})), device)


def architecture(model_config: Any) -> str:
    """A short description: "MLP 128x3 gelu", "U-Net small-16" (a preset) or "U-Net 32x(1, 2), attn (1,)"."""
    if model_config.kind == "mlp":
        return f"MLP {model_config.width}x{model_config.depth} {model_config.activation}"
    from diffusion.models.model_config import UNET_PRESETS
    for preset, settings in UNET_PRESETS.items():
        if all(getattr(model_config, k) == v for k, v in settings.items() if k not in ("image_size", "channels")):
            return f"U-Net {preset}"
    return (f"U-Net {model_config.base_width}x{model_config.channel_mult}, attn {model_config.attention_levels}, "
            f"{model_config.blocks_per_level} block/level")


def conditioning(model_config: Any) -> str:
    """none, add (label embedding + time embedding) or cross (cross-attention to label tokens)."""
    if not getattr(model_config, "num_classes", 0):
        return "none"
    return getattr(model_config, "conditioning", "add")


def is_qualifier(column: str) -> bool:
    """Whether a history column says how a number was measured (protocol, n, interval, floor) rather than being one."""
    return column in QUALIFIERS or any(column.endswith(suffix) for suffix in SUFFIXES)


def metric_names(history: pd.DataFrame) -> list[str]:
    """The measured metrics in a history, known ones first in METRIC_ORDER."""
    extra = sorted(c for c in history.columns if c not in NOT_METRICS and c not in METRIC_ORDER
                   and not is_qualifier(c))
    return [m for m in METRIC_ORDER if m in history.columns] + extra


def final_loss(history: pd.DataFrame, window: int = LOSS_WINDOW) -> float:
    """Mean of the last `window` logged losses (NaN without any)."""
    losses = history["loss"].dropna() if "loss" in history else pd.Series(dtype=float)
    return float(losses.tail(window).mean()) if len(losses) else math.nan


def final_metrics(history: pd.DataFrame) -> dict[str, Any]:
    """The last measurement: its protocol and n, each metric with its interval bounds and floor (m, m_low, m_high,
    m_floor, where the row has them)."""
    names = metric_names(history)
    measured = history[history[names].notna().any(axis=1)] if names else history.iloc[0:0]
    if measured.empty:
        return {}
    last = measured.iloc[-1]
    keep = [c for c in last.index if c in names or (is_qualifier(c) and c != "fid_n")
            and not c.endswith(("_floor_low", "_floor_high"))]
    return {c: (last[c] if c == "protocol" else float(last[c])) for c in keep if pd.notna(last[c])}


def row(s: RunSummary) -> dict[str, Any]:
    """The summary as one table row: identity, configuration, training, final loss and metrics."""
    head = {"name": s.name, "source": s.source}
    if not s.ok:
        return {**head, "error": s.error, "path": s.path}
    c, times = s.config, s.history["time"].dropna() if "time" in s.history else pd.Series(dtype=float)
    return {**head, "kind": "2D MLP" if c.model.kind == "mlp" else "U-Net", "dataset": c.data.dataset,
            "classes": ",".join(map(str, c.data.classes)) if c.data.classes else "all",
            "image_size": c.data.image_size, "conditioning": conditioning(c.model),
            "schedule": c.schedule.name + (" (zero SNR)" if c.schedule.zero_terminal_snr else ""),
            "T": c.schedule.timesteps, "objective": c.train.objective, "architecture": architecture(c.model),
            "parameters": parameter_count(c.model), "batch_size": c.train.batch_size, "lr": c.train.lr,
            "steps": s.step, "train_seconds": float(times.iloc[-1]) if len(times) else math.nan, "device": s.device,
            "final_loss": final_loss(s.history), **final_metrics(s.history), **likelihood_columns(s.likelihood, s.step),
            "error": "", "path": s.path}


def likelihood_columns(report: dict, step: int) -> dict[str, Any]:
    """The table columns of a likelihood report measured at `step` (none when there is none, or it is of an earlier
    step): images, bits_per_dim; 2D, model_nll (nats) with its floor, the true density's NLL of the same points;
    each with its 95% normal interval (mean +- 1.96 standard errors over the held-out points) and likelihood_n."""
    if not report or report.get("step") != step:
        return {}
    name, value = ("bits_per_dim", report["bits_per_dim"]) if "bits_per_dim" in report else ("model_nll", report["nll"])
    interval = normal(value["mean"], value["se"], "std / sqrt(n)")
    columns = {**interval.columns(name), "likelihood_n": report["n"], "likelihood_end": likelihood_end(report)}
    if report.get("true_nll"):
        columns[f"{name}_floor"] = report["true_nll"]["mean"]
    return columns


def likelihood_end(report: dict) -> str:
    """Where a likelihood report's ODE ends, e.g. 'sigma 0.01 (t 0.0099), matched' (at END_SIGMA, where every family's
    likelihood is read); a report written before the end was matched is matched only if it ended there."""
    end = report.get("end")
    if end is None:                        # an older report: matched when it happened to end at END_SIGMA
        t_min = report["t_range"][0]
        sigma = t_min / (1 - t_min)
        end = {"t_min": t_min, "sigma_min": sigma, "matched": abs(sigma / END_SIGMA - 1) < 1e-6}
    return f"sigma {end['sigma_min']:.2g} (t {end['t_min']:.2g}), {'matched' if end['matched'] else 'not matched'}"


def table(summaries: list[RunSummary]) -> pd.DataFrame:
    """One row per run (row()); metric columns appear when some run has them."""
    return pd.DataFrame([row(s) for s in summaries])


def _time_at(history: pd.DataFrame, steps: pd.Series) -> pd.Series:
    """Training seconds at each of steps (the history's time column, looked up by step)."""
    if "time" not in history:
        return pd.Series(math.nan, index=steps.index)
    return steps.map(history.dropna(subset=["time"]).set_index("step")["time"]).astype(float)


def loss_curves(summaries: list[RunSummary], max_points: int = 400) -> pd.DataFrame:
    """Each run's loss averaged over bins of steps, long form: columns run, step, time, loss."""
    frames = []
    for s in summaries:
        if s.ok and "loss" in s.history:
            h = s.history.dropna(subset=["loss"])
            curve = loss_frame(h["step"].to_numpy(), h["loss"].to_numpy(), max_points)
            frames.append(curve.assign(run=s.name, time=_time_at(s.history, curve["step"])))
    columns = ["run", "step", "time", "loss"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


FLOOR_COLUMNS = ("low", "high", "floor", "floor_low", "floor_high")     # a measurement's interval and its floor's


def metric_curves(summaries: list[RunSummary]) -> pd.DataFrame:
    """Every measurement of every run, long form: columns run, step, time, metric, value, low, high, floor,
    floor_low, floor_high, protocol (NaN where a row has no interval or floor; protocol None where a row does not
    say it)."""
    frames = []
    for s in summaries:
        names = metric_names(s.history) if s.ok else []
        for m in names:
            h = s.history.dropna(subset=[m])
            if h.empty:
                continue
            frames.append(pd.DataFrame({
                "run": s.name, "step": h["step"], "time": _time_at(s.history, h["step"]), "metric": m,
                "value": h[m], **{k: h.get(f"{m}_{k}", math.nan) for k in FLOOR_COLUMNS},
                "protocol": h["protocol"] if "protocol" in h else None}))
    columns = ["run", "step", "time", "metric", "value", *FLOOR_COLUMNS, "protocol"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


SETTINGS = ("kind", "dataset", "classes", "image_size", "conditioning", "schedule", "T", "objective", "architecture",
            "parameters", "batch_size", "lr", "steps", "device")   # what a comparison between runs says differs
SAME_DATA = ("dataset", "classes", "image_size")


def comparable(table: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """The runs whose last `metric` can be compared: one group per protocol and data (dataset, classes, image size),
    labelled 'protocol on dataset' (likelihoods: their n and end time); numbers of different groups are never put
    side by side."""
    rows = table[table[metric].notna()] if metric in table else table.iloc[0:0]
    groups: dict[str, list[int]] = {}
    for i, r in zip(rows.index, rows.to_dict("records")):
        protocol = r.get("protocol") if isinstance(r.get("protocol"), str) else "no protocol recorded"
        if metric in LIKELIHOOD_METRICS:           # a likelihood's protocol: held-out n and where its ODE ends
            protocol = f"ODE likelihood of {int(r['likelihood_n']):,} held-out, ending at {r['likelihood_end']}"
        size = f" {int(r['image_size'])} px" if pd.notna(r["image_size"]) else ""
        classes = f" classes {r['classes']}" if r["classes"] != "all" else ""
        groups.setdefault(f"{protocol} on {r['dataset']}{size}{classes}", []).append(i)
    return {label: rows.loc[index] for label, index in groups.items()}


def differences(rows: pd.DataFrame) -> list[str]:
    """The SETTINGS columns whose values differ between these runs."""
    return [c for c in SETTINGS if c in rows and rows[c].astype(str).nunique() > 1]
