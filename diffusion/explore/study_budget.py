"""The quality-versus-steps study's error budget: each sampler x steps row of a 2D study (explore.nfe_study.plan)
split by explore.error_budget into the floor, the solver (the exact denoiser through the row's sampler), the network
(learned against exact samples from the same noises: W1 and the mean displacement per sample) and the total, under
the study's own protocol (its n and seed), so each row's total is the study's W1 for that row.

One row per sampler configuration (the network at float32: the exact model has no precision), with each term's
value and 95% interval and the floor again as `solver_floor` (the band a solver curve is read against).
"""

import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from diffusion.explore.error_budget import error_budget
from diffusion.explore.nfe_study import NFE_TARGETS, Progress, markdown_table, plan, settings, study_protocol
from diffusion.sampling.registry import SAMPLERS
from diffusion.sampling.registry import nfe as nfe_of
from diffusion.sampling.run import Run
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.checkpoints import load_run

TERMS = ("floor", "solver", "network", "displacement", "total")   # ErrorBudget's fields, in its rows' order


def budget_plan(run: Run, samplers: Sequence[str | SamplerConfig], nfe_targets: Sequence[int],
                reference: bool = True) -> list[SamplerConfig]:
    """The sampler configurations a study of these inputs runs (nfe_study.plan), refused for an image run."""
    if run.is_image:
        raise ValueError("the error budget is for 2D runs: an image set has no exact law")
    return plan(run, samplers, nfe_targets, reference)


def study_budget(run: Run, samplers: Sequence[str | SamplerConfig] = SAMPLERS,
                 nfe_targets: Sequence[int] = NFE_TARGETS, *, n: int = 500, seed: int = 0, reference: bool = True,
                 progress: Progress | None = None) -> pd.DataFrame:
    """error_budget of every configuration of budget_plan(run, samplers, nfe_targets, reference) under the study's
    protocol at n and seed (the study's noises). Columns: precision (float32), sampler, settings, nfe, steps, each of
    TERMS with its bounds (term_low, term_high), solver_floor (+ _low, _high: the floor, the solver's yardstick),
    consistent (the triangle inequality holds), law (what plays the exact model, in words: a stand-in where the
    set has no exact law), protocol, n. progress(done, planned, row) after each row may return True to stop there."""
    configs = budget_plan(run, samplers, nfe_targets, reference)
    protocol = study_protocol(run, n, seed)
    rows: list[dict] = []
    for config in configs:
        b = error_budget(run, replace(protocol, sampler=config))
        terms = {f"{t}{s}": getattr(getattr(b, t), a) for t in TERMS
                 for s, a in (("", "value"), ("_low", "low"), ("_high", "high"))}
        rows.append({"precision": "float32", "sampler": config.name, "settings": settings(config),
                     "nfe": nfe_of(config.name, config.steps), "steps": config.steps, **terms,
                     **{f"solver_floor{s}": terms[f"floor{s}"] for s in ("", "_low", "_high")},
                     "consistent": b.consistent, "law": b.law.description,
                     "protocol": b.protocol.name, "n": n})
        if progress is not None and progress(len(rows), len(configs), rows[-1]):
            break
    return pd.DataFrame(rows)


def budget_markdown(frame: pd.DataFrame) -> str:
    """The budget as a Markdown table (each term 'value [95% interval]'), the exact model and the triangle check."""
    table = frame.drop(columns=["precision", "law", "consistent"]).filter(regex="^(?!solver_floor)")
    holds = "holds in every row" if frame["consistent"].all() else "FAILS in some row"
    return (f"{markdown_table(table)}\n\nExact model: {frame['law'].iloc[0]}. "
            f"|solver - network| <= total <= solver + network: {holds}. Protocol of the first row: "
            f"{frame['protocol'].iloc[0]}.")


def budget_checkpoint(checkpoint: str | Path, samplers: Sequence[str], nfe_targets: Sequence[int], out: str | Path,
                      *, n: int = 500, seed: int = 0, device: str = "cpu") -> str:
    """`python -m diffusion study --budget`: the study's error budget of a 2D run folder, written to out (.csv, or
    .md: budget_markdown), and returned as that Markdown; one progress line per row goes to stderr."""
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".md"):
        raise ValueError(f"output {str(out)!r}: the budget is written as .csv or .md")
    say = lambda done, total, row: print(f"[{done}/{total}] {row['sampler']} {row['nfe']} NFE: solver "  # noqa: E731
                                         f"{row['solver']:.3g}, network {row['network']:.3g}", file=sys.stderr)
    frame = study_budget(load_run(checkpoint, device), samplers, nfe_targets, n=n, seed=seed, progress=say)
    report = budget_markdown(frame) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False) if out.suffix.lower() == ".csv" else out.write_text(report)
    return report
