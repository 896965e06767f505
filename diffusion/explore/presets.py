"""The papers' published settings as named presets of primitives, keyed like our config sections.

`schedule` holds ScheduleConfig fields, `train` TrainConfig fields, `sampler` SamplerConfig fields (the EDM ones,
sigma_data / P_mean / P_std and sigma_min / sigma_max / rho / S_*, are the names proposed for those configs), and
`paper` the published values our runs change, each with where it comes from.
"""

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from diffusion.core.edm import EDM_P_MEAN, EDM_P_STD, EDM_RHO, EDM_SIGMA_DATA, EDM_SIGMA_MAX, EDM_SIGMA_MIN
from diffusion.sampling.registry import nfe


@dataclass(frozen=True, eq=False)
class Preset:
    """One paper's setting; every mapping is read-only and holds only JSON primitives."""

    name: str
    reference: str                   # paper, with the sections / tables the values come from
    schedule: Mapping[str, Any]      # ScheduleConfig fields; empty for EDM (continuous sigma, no discrete schedule)
    train: Mapping[str, Any]
    sampler: Mapping[str, Any]
    paper: Mapping[str, Any]         # published values we do not use, and why

    def __post_init__(self):
        for name in ("schedule", "train", "sampler", "paper"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def nfe(self) -> int:
        """Network evaluations per sample of the preset's sampler."""
        return nfe(self.sampler["name"], self.sampler["steps"])


_EDM_TRAIN = {"objective": "edm", "sigma_data": EDM_SIGMA_DATA, "P_mean": EDM_P_MEAN, "P_std": EDM_P_STD}
_EDM_GRID = {"grid": "karras", "sigma_min": EDM_SIGMA_MIN, "sigma_max": EDM_SIGMA_MAX, "rho": EDM_RHO}

PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in (
    Preset(
        "DDPM 2020", "Ho et al. 2020, sec. 4 (T, betas), eq. 14 (L_simple), Algorithm 2 and sec. 3.2 (variance)",
        schedule={"name": "linear", "timesteps": 1000},   # beta_1 = 1e-4 .. beta_T = 0.02, linear
        train={"objective": "eps"},
        sampler={"name": "ddpm", "steps": 1000, "spacing": "trailing", "variance": "beta"},
        paper={"variance": "sec. 3.2: sigma_t^2 = beta_t and beta_tilde_t gave similar results; beta_t is the "
                           "official CIFAR-10 setting ('fixedlarge')"},
    ),
    Preset(
        "iDDPM cosine", "Nichol & Dhariwal 2021, eq. 17 and sec. 3.2 (cosine, s = 0.008, beta <= 0.999), "
        "sec. 3 (T = 4000), sec. 3.1 (learned variances)",
        schedule={"name": "cosine", "timesteps": 1000},
        train={"objective": "eps"},
        sampler={"name": "ddpm", "steps": 1000, "spacing": "trailing", "variance": "beta"},
        paper={"timesteps": 4000, "cosine_s": 0.008, "max_beta": 0.999,
               "objective": "L_hybrid = L_simple + 0.001 L_vlb with learned variances (eq. 16); we train L_simple "
                            "(eps) with fixed variances, as their L_simple baselines",
               "variance": "learned Sigma_theta (sec. 3.1); with fixed variances we take beta_t, DDPM's CIFAR-10 "
                           "choice"},
    ),
    Preset(
        "DDIM", "Song et al. 2021, eq. 12 (eta = 0), sec. 5 and App. D.2 (step selection, 10-1000 steps)",
        schedule={"name": "linear", "timesteps": 1000},   # DDIM sampled the DDPM-trained models
        train={"objective": "eps"},
        sampler={"name": "ddim", "steps": 50, "eta": 0.0, "spacing": "leading"},
        paper={"spacing": "App. D.2: 'quadratic' tau_i = floor(c i^2) for CIFAR-10, 'linear' tau_i = floor(c i) "
                          "elsewhere; we use 'leading' (k T/S), their linear selection as in their code; "
                          "quadratic spacing is not implemented"},
    ),
    Preset(
        "EDM", "Karras et al. 2022, Table 1 (preconditioning, loss, sigma grid), Algorithm 2 (Heun), "
        "sec. 3 (18 steps = 35 NFE for CIFAR-10), Table 5 (S_churn = 0: deterministic)",
        schedule={},
        train=_EDM_TRAIN,
        sampler={"name": "heun", "steps": 18, **_EDM_GRID, "S_churn": 0.0, "S_min": 0.0, "S_max": math.inf,
                 "S_noise": 1.0},
        paper={"sigma_data": "0.5 is the std of CIFAR-10 in [-1, 1]; our 2D sets have std 1 (use 1.0 there)"},
    ),
    Preset(
        "EDM stochastic", "Karras et al. 2022, Table 5 and the official code's README (ImageNet-64, EDM-trained: "
        "256 steps, S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003)",
        schedule={},
        train=_EDM_TRAIN,
        sampler={"name": "heun", "steps": 256, **_EDM_GRID, "S_churn": 40.0, "S_min": 0.05, "S_max": 50.0,
                 "S_noise": 1.003},
        paper={"S_churn": "tuned per dataset and model (Table 5); CIFAR-10 is best deterministic"},
    ),
)})


def preset(name: str) -> Preset:
    """The named preset; ValueError listing the names if unknown."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]
