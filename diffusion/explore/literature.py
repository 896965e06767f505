"""Published quality-versus-NFE points, as data with their sources, and the relative axis on which they can be drawn
beside ours: CIFAR-10 Inception FID is not our classifier FID, but "FID over the same curve's 1000-step value" is a
ratio either way.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

DDIM_2020 = "Song et al. 2020, DDIM, Table 1 (CIFAR-10 32x32, FID, 50k samples)"
EDM_2022 = "Karras et al. 2022, EDM, Table 2 (CIFAR-10 32x32, FID, Heun, VP)"
DPM_SOLVER_2022 = "Lu et al. 2022, DPM-Solver, abstract (CIFAR-10, FID)"
DDIM_STEPS = (10, 20, 50, 100, 1000)
DDIM_TABLE_1: dict[str, tuple[float, ...]] = {   # S = 10, 20, 50, 100, 1000 (one network evaluation per step)
    "DDIM eta=0": (13.36, 6.84, 4.67, 4.16, 4.04),
    "DDIM eta=0.2": (14.04, 7.11, 4.77, 4.25, 4.09),
    "DDIM eta=0.5": (16.66, 8.35, 5.25, 4.46, 4.29),
    "DDIM eta=1": (41.07, 18.36, 8.01, 5.78, 4.73),
    "DDPM sigma-hat": (367.43, 133.37, 32.72, 9.99, 3.17),   # DDPM's larger variance, beta_t
}
FULL_NFE = 1000   # the curve's reference point, when it has one


@dataclass(frozen=True)
class ReferencePoint:
    """One published (NFE, FID) point of a named curve."""

    source: str
    curve: str
    nfe: int
    fid: float


def reference_points() -> tuple[ReferencePoint, ...]:
    """Every published point: DDIM Table 1, EDM's 35-NFE Heun results, DPM-Solver's 10 and 20 NFE."""
    ddim = [ReferencePoint(DDIM_2020, curve, s, fid) for curve, fids in DDIM_TABLE_1.items()
            for s, fid in zip(DDIM_STEPS, fids)]
    edm = [ReferencePoint(EDM_2022, "EDM Heun, conditional", 35, 1.79),
           ReferencePoint(EDM_2022, "EDM Heun, unconditional", 35, 1.97)]
    dpm = [ReferencePoint(DPM_SOLVER_2022, "DPM-Solver", 10, 4.70),
           ReferencePoint(DPM_SOLVER_2022, "DPM-Solver", 20, 2.87)]
    return (*ddim, *edm, *dpm)


def relative_to_reference(frame: pd.DataFrame, value: str, curve: str = "curve", nfe: str = "nfe") -> pd.Series:
    """value over the same curve's value at FULL_NFE evaluations when the curve has that point, else over its best
    (lowest) value: 1 is as good as the curve gets, 2 is twice its FID. NaN where the divisor is not positive. (Per
    curve by transform: a groupby-apply returns a frame, not a series, when there is a single curve.)"""
    groups = frame[curve]
    full = frame[value].where(frame[nfe] == FULL_NFE).groupby(groups, sort=False).transform("first")
    base = full.fillna(frame[value].groupby(groups, sort=False).transform("min"))
    return frame[value] / base.where(np.isfinite(base) & (base > 0))


def literature_frame() -> pd.DataFrame:
    """Columns source, curve, nfe, fid, relative (relative_to_reference), one row per published point."""
    frame = pd.DataFrame([vars(p) for p in reference_points()])
    return frame.assign(relative=relative_to_reference(frame, "fid"))
