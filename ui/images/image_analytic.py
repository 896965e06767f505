"""The image pages' sections on why a network generalises: its samples beside three analytic denoisers' from the same
noises, how closely its x0_hat follows each along t (explore.analytic_comparison), and the training-set-size sweep of
the shipped Fashion-MNIST runs (explore.size_sweep); each behind a button naming its time (ui.timing)."""

import pandas as pd
import streamlit as st
import torch

from diffusion.data.image_datasets import class_names
from diffusion.explore import analytic_comparison as an
from diffusion.explore import image_experiments as ei
from diffusion.explore import size_sweep as sw
from diffusion.metrics.evaluation import row_sentences
from diffusion.metrics.intervals import median_interval
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

from ui.images import image_cache
from ui.images.image_ondemand import opened
from ui.jobs import run_costs, shipped_runs, timing
from ui.views import charts
from ui.views.layout import error_box, working

SIDE_N, SIDE_STEPS = 8, 20            # samples per denoiser (conditional: at least one per class), DDIM steps
AGREE_N = 16                          # held-out images noised at each t
SWEEP_SAMPLES, SWEEP_PAIRS = 100, 6         # samples per N for FID and memorisation; pairs shown per N (one a row)
STAND_IN_T = 500                      # the timestep the analytic denoisers' step costs are timed at


def explain(run: Run) -> str:
    patch, most = an.patch_settings(run.config.model.image_size)
    per_class = (" For this class-conditional model each one is built **per class**: for label y, the same denoiser "
                 "of the training images of class y (the Gaussian of class y's mean and covariance, the patches of "
                 "class y's images); the whole set's stands for the label dropped, so classifier-free guidance "
                 "combines the two as it does the network's.") if run.num_classes else ""
    return (
        "Three denoisers that need no training, each run by the same sampler from the same initial noises as the "
        "network: the **optimal (empirical) denoiser** of the training set, E[x0 | x_t] when x0 is one of the N "
        "training images (it minimises the training loss, so a network that learned it perfectly could only copy); "
        "the **Gaussian denoiser** of the data's mean and covariance (Wang & Vastola 2024: it explains trained models "
        "at high noise); and the **local equivariant patch machine** of Kamb & Ganguli 2024: each pixel's x̂0 is the "
        f"posterior mean over the training set's {patch}x{patch} patches given only the noisy patch around it (fixed "
        f"patch size, zero padding, a random {most:,} patches per position group: docs/analytic-denoisers.md says "
        f"what it simplifies).{per_class} Each sample is shown beside its nearest training image (of the whole "
        "set); d1 is that L2 distance (pixels in [-1, 1]), and d1 / typical divides it by the median d1 of held-out "
        "real images (0: a copy, 1: as new as fresh data).")


BUILT: set[str] = set()               # run keys whose analytic denoisers this server holds (analytic_runs)


@st.cache_resource(show_spinner=False, max_entries=4)
def analytic_runs(run_key: str, _run: Run) -> dict[str, Run]:
    """The analytic denoisers of the run's training set, built once per model (shared read-only), behind the
    section's button: their build is part of its promise until BUILT holds the run."""
    runs = an.analytic_runs(_run)
    BUILT.add(run_key)
    return runs


def _stand_in_images(run: Run):
    """The images one analytic denoiser is built on: an unconditional run's training set; a conditional run's largest
    class (ClassConditional builds one per class and one of the whole set)."""
    data = ei.training_set(run.config.data)
    return data.x if not run.num_classes else data.x[data.y == data.y.bincount().argmax()]


@st.cache_data(show_spinner="Timing the analytic denoisers...", max_entries=4)
def analytic_costs(run_key: str, _run: Run, threads: int) -> dict[str, tuple[timing.Cost, timing.Cost, timing.Cost]]:
    """(build, per call, per image) of each analytic denoiser, timed on a stand-in (_stand_in_images) so that the
    page need not build them all before the visitor asks: one build, and calls at two batch sizes."""
    images, (patch, most) = _stand_in_images(_run), an.patch_settings(_run.config.model.image_size)
    nets = {}

    def build(kind: str) -> None:
        nets[kind] = an.analytic_net(kind, images, _run.schedule.alpha_bar, patch, most)

    def call(kind: str, n: int) -> None:
        nets[kind](torch.randn(n, *images.shape[1:]), torch.full((n,), STAND_IN_T))
    return {k: (timing.measure(lambda k=k: build(k), repeats=1, warmup=0, threads=threads),
                *timing.measure_fit(lambda n, k=k: call(k, n), (1, 4), repeats=2, threads=threads))
            for k in an.ANALYTIC}


@st.cache_data(show_spinner=False, max_entries=4)
def side_by_side(run_key: str, _run: Run, n: int, sampler: SamplerConfig, seed: int) -> dict[str, an.SampleSet]:
    return an.side_by_side(_run, n, sampler, seed, analytic_runs(run_key, _run))


@st.cache_data(show_spinner=False, max_entries=4)
def agreement(run_key: str, _run: Run, n: int) -> pd.DataFrame:
    return an.agreement(_run, n, others=analytic_runs(run_key, _run))


def _promise(kind: str, run_key: str, run: Run, network: timing.Estimate, steps: int, calls: int, images: int,
             searched: int = 0) -> timing.Estimate:
    """network's estimate plus the analytic denoisers': built (unless held; a conditional run's once per class and
    once for the whole set, which costs about as much as the classes it holds: N / N_c stand-ins, the Gaussian's
    covariance scaling with N), `calls` calls and `images` images through each for each of `steps` steps, and the
    nearest-image search of `searched` samples (side_by_side; with the held-out images)."""
    costs = analytic_costs(run_key, run, run_costs.script_threads())
    builds = 0 if run_key in BUILT else _stand_ins(run)
    work = [(b, builds) for b, _, _ in costs.values()] + [(c, steps * calls) for _, c, _ in costs.values()] + [
        (i, images) for _, _, i in costs.values()]
    if searched:
        fixed, per_image, held_out = image_cache.search_costs(run_key, run, run_costs.script_threads())
        work += [(fixed, 2), (per_image, searched + held_out)]
    return network + timing.expect(kind, *work)


def _stand_ins(run: Run) -> float:
    """Builds of the stand-in (_stand_in_images) that building all of a run's analytic denoisers costs: 1 for an
    unconditional run; a conditional run's classes plus the whole set's N / N_c."""
    if not run.num_classes:
        return 1.0
    return _classes(run) + len(ei.training_set(run.config.data).x) / len(_stand_in_images(run))


def _classes(run: Run) -> int:
    """How many classes a conditional run was trained on (its balanced labels cycle through them)."""
    return len(run.config.data.classes or range(run.num_classes))


def _class_order(run: Run, labels) -> str:
    """What the pairs of a grid are, by class, in reading order (the digits, the shapes' names)."""
    names = class_names(run.config.data.dataset)
    named = [names[c] if names and c < len(names) else f"class {c}" for c in labels.tolist()]
    return "pairs in reading order, one per class: " + ", ".join(named)


def side_n(run: Run) -> int:
    """SIDE_N samples; a conditional run's: the fewest whole rounds of its classes that hold SIDE_N (10 classes: 10)."""
    return SIDE_N if not run.num_classes else _classes(run) * -(-SIDE_N // _classes(run))


def analytic_section(prefix: str, model: tuple[str, Run], sampling) -> None:
    """The network's samples beside the analytic denoisers' from the same noises, then x0_hat agreement against t."""
    st.header("Beside analytic denoisers: copy, Gaussian, patches")
    run_key, run = model
    st.markdown(explain(run))
    n, w = side_n(run), sampling.sampler.guidance if run.num_classes else 1.0
    sampler = SamplerConfig("ddim", steps=SIDE_STEPS, guidance=w)
    promise = _promise("analytic samples", run_key, run, sampling.promise("analytic samples", n, SIDE_STEPS, w),
                       SIDE_STEPS, an.denoiser_calls(run, n, sampler), ei.network_evaluations(n, sampler), 4 * n)
    if opened(f"{prefix}_analytic", run_key, sampler, f"Sample {n} noises with all four denoisers", promise):
        try:
            with working("Building the analytic denoisers and sampling with all four", promise):
                sets = side_by_side(run_key, run, n, sampler, 0)
        except ValueError as e:           # a class trained with weight 0 has no images to build its denoisers on
            error_box("The analytic denoisers cannot sample this model", e)
            return
        train = ei.training_set(run.config.data).x
        for col, (name, s) in zip(st.columns(len(sets)), sets.items()):
            col.image(ei.pair_grid(s.samples, train[s.nearest], per_row=2), width="stretch",
                      caption=f"{an.LABELS[name]}: median d1 / typical {_median(s.ratio)}")
        st.table(an.summary_text(an.summary(sets)))
        labels = run.balanced_labels(n)
        guided = (f"w = {w:g} on both sides (the analytic side: whole set's x̂0 + w (class's − whole set's))"
                  if w != 1.0 else "w = 1 on both sides (the analytic side: the class's denoiser)")
        classes = "" if labels is None else f"; {_class_order(run, labels)}; {guided}"
        st.caption(f"DDIM {SIDE_STEPS} steps, seed 0, the same {n} initial noises in every column{classes}; each sample "
                   f"beside its nearest training image. The table: n = {n} per row, 95% intervals (medians: order "
                   "statistics, distribution-free; copies, d1 / typical below 0.3: Wilson; RMS to network, each "
                   "sample's per-pixel distance to the network's sample from the same noise: t interval).")
    agreement_section(prefix, model, sampling)


def _median(values) -> str:
    """'0.88 [0.61, 1.02]': a median with its order-statistic interval (metrics.intervals.median_interval)."""
    m = median_interval(values)
    return f"{m.value:.2f} [{m.low:.2f}, {m.high:.2f}]"


def agreement_section(prefix: str, model: tuple[str, Run], sampling) -> None:
    st.subheader("Where the network follows each one, along t")
    run_key, run = model
    steps = len(an.AGREEMENT_TIMESTEPS)
    calls = an.denoiser_calls(run, AGREE_N, SamplerConfig())
    promise = _promise("analytic agreement", run_key, run,
                       sampling.promise("analytic agreement", AGREE_N, steps, guidance=1.0), steps, calls,
                       AGREE_N * steps)
    if not opened(f"{prefix}_agreement", run_key, AGREE_N, f"Compare x̂0 at {steps} noise levels", promise):
        return
    try:
        with working("Denoising noised held-out images with every denoiser", promise):
            frame = agreement(run_key, run, AGREE_N)
    except ValueError as e:
        error_box("The analytic denoisers cannot denoise these held-out images", e)
        return
    shown = frame.assign(denoiser=frame["denoiser"].map({**an.LABELS, "truth": "the clean image (network's error)"}))
    charts.show(charts.agreement_curves(shown))
    closest = an.closest_by_noise(frame)
    runs = ", ".join(f"t = {t}: {an.LABELS[c].split(' (')[0]}" for t, c in zip(closest["t"], closest["closest"]))
    labelled = (" of every class in turn, each denoiser given the image's label (w = 1: the class denoisers, "
                "unguided)") if run.num_classes else ""
    st.caption(f"For {AGREE_N} held-out images x0{labelled} noised to x_t at each t (seeded ε), the mean over images "
               "of |D_θ(x_t) − D(x_t)|² per pixel, both x̂0 clipped to [-1, 1] as the sampler sees them, with 95% "
               f"intervals (std / √n). Below the network's own error (the clean image's line), the network follows "
               f"that denoiser more closely than it knows the answer. Closest at each t: {runs}.")


@st.cache_resource(show_spinner="Loading the shipped sweep runs...")
def sweep_runs() -> dict[int, Run]:
    return sw.sweep_runs(shipped_runs.SHIPPED_ROOT)


@st.cache_data(show_spinner=False, max_entries=2)
def sweep_table(n: int) -> tuple[pd.DataFrame, dict[int, an.SampleSet]]:
    return sw.sweep_table(sweep_runs(), n)


def sweep_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The sweep table in the long form metric_curves draws: step = N; FID with its floor, median d1 / typical."""
    fid = table.assign(metric="FID", step=table["N"], value=table["fid"], low=table["fid_low"],
                       high=table["fid_high"], floor=table["fid_floor"], floor_low=table["fid_floor_low"],
                       floor_high=table["fid_floor_high"])
    ratio = table.assign(metric="copies (d1 / typical < 0.3)", step=table["N"], value=table["copies"],
                         low=table["copies_low"], high=table["copies_high"])
    columns = ["step", "metric", "value", "low", "high", "floor", "floor_low", "floor_high"]
    return pd.concat([fid, ratio], ignore_index=True).reindex(columns=columns)


def size_sweep_section(prefix: str) -> None:
    """The shipped training-set-size sweep: samples beside their nearest training images, copies and FID against N."""
    st.subheader("Training-set size: from copies to new images")
    runs = sweep_runs()
    if not runs:
        st.info(f"The sweep runs ({', '.join(sw.SWEEP_FOLDERS.values())}) are not in this copy.",
                icon=":material/info:")
        return
    st.markdown(f"The same tiny U-Net trained on N = {', '.join(f'{n:,}' for n in runs)} Fashion-MNIST ankle boots "
                "(16x16; MNIST offline has only 400 images of a digit), the same steps each (Kadkhodaie et al. 2024: "
                "below some N a network reproduces its training images; above it, it makes new ones).")
    threads, steps = run_costs.script_threads(), sw.SWEEP_SAMPLER.steps
    costs = [run_costs.sampling_costs(f"sweep-{n}", r, threads) for n, r in runs.items()]
    measure = run_costs.measurement_cost(next(iter(runs.values())).config, SWEEP_SAMPLES)
    promise = timing.expect("size sweep", *[(call, steps) for call, _ in costs],
                            *[(image, SWEEP_SAMPLES * steps) for _, image in costs], (measure, len(runs)))
    if not opened(f"{prefix}_sweep", "shipped-sweep", SWEEP_SAMPLES, f"Sample and measure {SWEEP_SAMPLES} images per N", promise):
        return
    with working("Sampling every N and measuring", promise):
        table, sets = sweep_table(SWEEP_SAMPLES)
    for col, (N, s) in zip(st.columns(len(sets)), sets.items()):
        nearest = sw.nearest_images(runs[N], s)
        col.image(ei.pair_grid(s.samples[:SWEEP_PAIRS], nearest[:SWEEP_PAIRS], per_row=1), width="stretch",
                  caption=f"N = {N:,}: median d1 / typical {_median(s.ratio)}")
    charts.panels(charts.metric_curves, sweep_frame(table), order=("copies (d1 / typical < 0.3)", "FID"),
                  x_title="training images N (log)", log_x=True)
    for _, row in table.iterrows():
        st.caption(f"N = {int(row['N']):,}: {row_sentences(row.to_dict(), {'fid': 'FID'})} · copies "
                   f"{row['copies']:.0%} [{row['copies_low']:.0%}, {row['copies_high']:.0%}] ({row['protocol']})")
    st.caption(f"{SWEEP_SAMPLES} samples per N ({sw.SWEEP_SAMPLER.name.upper()} {sw.SWEEP_SAMPLER.steps}, seed 0). FID on "
               "the "
               "shipped Fashion-MNIST classifier's features against held-out ankle boots, its floor from the class's "
               "6,000 training images (not the N: a floor of 10 images says nothing); d1 against the run's own N.")
