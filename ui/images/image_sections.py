"""Sections every image page shares, for one model (run_key, Run): which model, the sample grid (drawn at once,
small), and on demand the denoising filmstrip, memorisation (nearest training images), diversity, and
interpolation between two noises. The on-demand sections follow the grid's sampler (method, steps, w)."""

from dataclasses import dataclass

import streamlit as st

from diffusion.data.image_datasets import class_names
from diffusion.explore import image_experiments as ei
from diffusion.metrics.intervals import wilson
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

from ui.images import image_cache
from ui.images.image_ondemand import opened
from ui.jobs import run_costs, shipped_runs, timing
from ui.views.layout import error_box, working

Model = tuple[str, Run]
STEP_OPTIONS = (10, 20, 50, 100, 250)
GRID_IMAGES = (16, 25, 36, 64)        # unconditional grid sizes; the first render draws 25
PER_CLASS = (1, 2, 3, 4, 8)           # conditional grid: images per class; the first render draws PER_CLASS_FIRST
PER_CLASS_FIRST = {16: 3, 32: 2}      # first class grid: ~30 images at 16x16, 20 at 32x32 (4x the pixels)
FIRST_STEPS = (20, 10)                # first grid's steps: unconditional (one batch) / conditional (one small batch
                                      # per class; DDIM 10 looks as sharp as 20 on the shipped runs): ~1-2.5 s each
MEMO_N, DIVERSITY_N, FILM_N = 16, 64, 4
GRID_AUTO_S = 15                      # a grid that takes longer waits behind a button naming its time
GUIDANCE_FORMULA = ("Classifier-free guidance (Ho & Salimans 2022): guided = uncond + w (cond − uncond); w = 1 is "
                    "the plain conditional model, w = 0 ignores the label, w > 1 pushes towards it.")


@dataclass(frozen=True)
class Sampling:
    """The grid's sampler (the on-demand sections follow it) and what sampling costs on this machine: per network
    call and per image through the network (ui.jobs.run_costs.sampling_costs); model names the network, so that the
    server's record corrects each kind of work per network."""

    sampler: SamplerConfig
    call: timing.Cost
    image: timing.Cost
    conditional: bool
    model: str

    @classmethod
    def of(cls, model: Model, sampler: SamplerConfig) -> "Sampling":
        run_key, run = model
        m = run.config.model
        name = f"{run.config.data.dataset} {m.image_size}x{m.image_size}x{m.channels} {m.base_width}" + (
            f" {m.conditioning}" if m.num_classes else "")
        costs = run_costs.sampling_costs(run_key, run, run_costs.script_threads())
        return cls(sampler, *costs, bool(run.num_classes), name)

    def kind(self, work: str) -> str:
        """The record's name for `work` on this network."""
        return f"{work} · {self.model}"

    def promise(self, work: str, n: int, steps: int | None = None, guidance: float | None = None,
                calls_per_step: int = 1, per_image: int = 1) -> timing.Estimate:
        """The expected time of drawing n samples (by default with the grid's steps and w), in calls_per_step
        batches each step (the class rows: one per class), each image going per_image times through the network
        (label interpolation: twice)."""
        steps = steps or self.sampler.steps
        w = self.sampler.guidance if guidance is None else guidance
        images = ei.network_evaluations(n, SamplerConfig("ddim", steps=steps, guidance=w)) * per_image
        return timing.expect(self.kind(work), (self.call, steps * calls_per_step), (self.image, images))

    def describe(self) -> str:
        w = f", w = {self.sampler.guidance:g}" if self.conditional else ""
        return f"{self.sampler.name.upper()} {self.sampler.steps} steps{w}"


def choose_model(prefix: str, shipped: str | None, trained: Model | None) -> Model | None:
    """The shipped run named `shipped` (ui.jobs.shipped_runs; if any) or this visitor's trained model, as the visitor
    picks; a model the visitor has just trained becomes the pick (once: they can go back to the shipped run)."""
    run = shipped_runs.shipped_run(shipped) if shipped else None
    folder = shipped_runs.SHIPPED[shipped].folder if shipped else None
    options = (["shipped"] if run is not None else []) + (["trained"] if trained is not None else [])
    if not options:
        missing = f"the shipped run (checkpoints/{folder}) is not in this copy; " if shipped else ""
        st.info(f"No model yet: {missing}train one above.", icon=":material/info:")
        return None
    labels = {"shipped": f"shipped run ({folder})", "trained": "the model you trained"}
    if trained is not None and st.session_state.get(f"{prefix}_model_seen") != trained[0]:
        st.session_state[f"{prefix}_model_seen"] = trained[0]
        st.session_state[f"{prefix}_model"] = "trained"
    pick = st.radio("Model", options, format_func=labels.get, horizontal=True, key=f"{prefix}_model")
    model = (shipped_runs.shipped_key(shipped), run) if pick == "shipped" else trained
    model_caption(model[1])
    return model


def model_caption(run: Run) -> None:
    cfg, m = run.config, run.config.model
    cond = f"conditional ({m.conditioning}), {m.num_classes} classes" if m.num_classes else "unconditional"
    classes = f" classes {list(cfg.data.classes)}" if cfg.data.classes else ""
    st.caption(f"Model: {cfg.data.dataset}{classes} {m.image_size}x{m.image_size}x{m.channels} · U-Net "
               f"{m.base_width}x{list(m.channel_mult)} · {cond} · {cfg.schedule.name} T={cfg.schedule.timesteps} · "
               f"step {run.step:,} (EMA weights)")


def guidance_slider(key: str, label: str = "Guidance scale w") -> float:
    return st.slider(label, 0.0, 8.0, 1.0, 0.5, key=key, help=GUIDANCE_FORMULA)


def sampler_controls(prefix: str, run: Run) -> SamplerConfig:
    """DDIM (eta 0) or DDPM with a number of steps, and the guidance scale for conditional runs."""
    cols = st.columns(3)
    name = cols[0].radio("Sampler", ("ddim", "ddpm"), format_func=str.upper, horizontal=True, key=f"{prefix}_sampler")
    options = [s for s in STEP_OPTIONS if s <= run.schedule.T]
    first = FIRST_STEPS[bool(run.num_classes)]
    steps = cols[1].select_slider("Sampling steps", options, first, key=f"{prefix}_sample_steps")
    with cols[2]:
        w = guidance_slider(f"{prefix}_grid_w") if run.num_classes else 1.0
    return SamplerConfig(name, steps=steps, guidance=w)


def class_name(run: Run):
    """How a class selector shows label k: its name (a shape, a CIFAR-10 class) or the digit itself."""
    names = class_names(run.config.data.dataset)
    return names.__getitem__ if names is not None and len(names) >= run.num_classes else str


def row_names(run: Run) -> str:
    """What the rows of a class grid are, by name (the digits, the shapes, CIFAR-10's classes)."""
    names = class_names(run.config.data.dataset)
    if names is None or len(names) < run.num_classes:
        return "Row c: class c"
    names = names[:run.num_classes]
    if names == tuple(str(k) for k in range(len(names))):
        return f"Rows, top to bottom: the digits {names[0]} to {names[-1]}"
    return "Rows, top to bottom: " + ", ".join(names)


def _grid(prefix: str, model: Model, sampling: Sampling) -> tuple | None:
    """(grid, caption) of the grid the widgets describe: drawn at once when that takes at most GRID_AUTO_S seconds,
    else behind a button naming its time; None while it waits."""
    run_key, run = model
    sampler = sampling.sampler
    cols = st.columns(2)
    seed = int(cols[1].number_input("Seed", 0, 10_000, 0, key=f"{prefix}_seed"))
    if run.num_classes:
        first = PER_CLASS_FIRST.get(run.config.model.image_size, 2)
        per_class = cols[0].select_slider("Images per class", PER_CLASS, first, key=f"{prefix}_per_class")
        promise = sampling.promise("grid", per_class * run.num_classes, calls_per_step=run.num_classes)
        draw = lambda: image_cache.class_grid(run_key, run, per_class, sampler, seed)   # noqa: E731
        caption = f"{row_names(run)}; column j: initial noise j (seed {seed})"
    else:
        n = cols[0].select_slider("Images", GRID_IMAGES, 25, key=f"{prefix}_n")
        promise = sampling.promise("grid", n)
        draw = lambda: image_cache.grid(run_key, run, n, sampler, seed)                 # noqa: E731
        caption = f"{n} samples, seed {seed}"
    if not opened(f"{prefix}_grid", run_key, (sampler, seed, caption), "Draw the grid", promise, GRID_AUTO_S,
                  closable=False):
        return None
    with working("Sampling the grid", promise):
        return draw(), caption


def samples_section(prefix: str, model: Model) -> Sampling:
    """The grid (conditional runs: one row per class from the same noises); returns its sampler and cost."""
    st.header("Samples")
    run_key, run = model
    if run.num_classes:
        st.markdown(f"**{GUIDANCE_FORMULA}**")
    sampling = Sampling.of(model, sampler_controls(prefix, run))
    drawn = _grid(prefix, model, sampling)
    if drawn is not None:
        grid, caption = drawn
        st.image(grid.image, caption=caption)
        guided = run.num_classes and sampling.sampler.guidance != 1
        doubled = "; guidance (w ≠ 1) runs each image twice" if guided else ""
        st.caption(f"Drawn in {grid.seconds:.1f} s on this machine ({grid.evaluations:,} images through the network"
                   f"{doubled}); each setting is cached. The sections below run on demand, each button saying how "
                   f"long it expects, and sample with this sampler ({sampling.describe()}).")
    return sampling


def filmstrip_section(prefix: str, model: Model, sampling: Sampling) -> None:
    st.header("Denoising filmstrip")
    run_key, run = model
    steps = sampling.sampler.steps
    picks = st.multiselect("Steps to show (0: pure noise x_T; the last: the output)", range(steps + 1),
                           default=ei.even_frames(steps, min(6, steps + 1)), key=f"{prefix}_frames",
                           format_func=lambda i: "output" if i == steps else f"step {i}")
    if not picks:
        error_box("No step chosen", f"pick at least one of the steps 0 to {steps}")
        return
    promise = sampling.promise("filmstrip", FILM_N)
    inputs = (sampling.sampler, tuple(sorted(picks)))
    if not opened(f"{prefix}_film", run_key, inputs, "Record the denoising steps", promise):
        return
    with working("Recording the denoising steps", promise):
        strip = image_cache.filmstrip(run_key, run, sampling.sampler, FILM_N, tuple(sorted(picks)))
    ts = ", ".join(f"t={t}" if t else "output" for t in strip.timesteps)
    cols = st.columns(2)       # stretched: two grids of one size drawn at one size, whatever their captions
    cols[0].image(strip.x_t, caption=f"x_t, left to right: {ts}", width="stretch")
    cols[1].image(strip.x0_hat, caption="predicted x0 (x̂_0) at the same steps: the model's guess of the end",
                  width="stretch")
    st.caption(f"Four samples ({sampling.describe()}, seed 0): early x̂_0 is a blurry average of plausible images; "
               "it sharpens as t falls.")


def memorisation_section(prefix: str, model: Model, sampling: Sampling) -> None:
    st.header("Memorisation: each sample beside its nearest training image")
    run_key, run = model
    search, per_image, holdout = image_cache.search_costs(run_key, run, run_costs.script_threads())
    promise = sampling.promise("memorisation", MEMO_N) + timing.expect(
        sampling.kind("memorisation"), (search, 2), (per_image, MEMO_N + holdout))
    if not opened(f"{prefix}_memo", run_key, sampling.sampler, f"Compare {MEMO_N} samples with the training set",
                  promise):
        return
    try:
        with working("Sampling and searching the training set", promise):
            memo = image_cache.memorisation(run_key, run, MEMO_N, sampling.sampler)
    except (ValueError, OSError) as e:
        error_box("No memorisation check", e)
        return
    st.image(memo.pairs, caption=f"Pairs: a sample ({sampling.describe()}), then its nearest training image "
                                 "(L2 in pixels)")
    ratios = sorted(memo.ratio)
    copies = wilson(memo.copies, MEMO_N)
    st.caption(f"Distance to the nearest training image over the typical distance of a held-out real image: "
               f"median {ratios[len(ratios) // 2]:.2f} (1 = as novel as fresh data, 0 = a copy); {memo.copies} of "
               f"{MEMO_N} samples below 0.3 ({copies.value:.0%}, 95% interval {copies.low:.0%} to {copies.high:.0%}; "
               f"held-out real images: {memo.copy_floor:.0%} flagged).")


def diversity_section(prefix: str, model: Model, sampling: Sampling) -> None:
    st.header("Diversity")
    run_key, run = model
    promise = sampling.promise("diversity", DIVERSITY_N)
    if not opened(f"{prefix}_diversity", run_key, sampling.sampler, f"Measure {DIVERSITY_N} samples", promise):
        return
    with working(f"Sampling {DIVERSITY_N} images", promise):
        d = image_cache.diversity(run_key, run, DIVERSITY_N, sampling.sampler)
    cols = st.columns(2)
    cols[0].metric(f"Mean pairwise distance, {DIVERSITY_N} samples", d["samples"].text())
    cols[1].metric(f"Same, {DIVERSITY_N} real training images", d["real"].text())
    st.caption(f"L2 distance between images in [-1, 1] pixels ({sampling.describe()}), with 95% intervals. Far "
               "below the real value: mode collapse or memorisation; far above: noise.")


def noise_interpolation_section(prefix: str, model: Model, sampling: Sampling) -> None:
    st.header("Interpolation between two noises")
    run_key, run = model
    cols = st.columns(4)
    seed_a = int(cols[0].number_input("Seed A", 0, 10_000, 1, key=f"{prefix}_seed_a"))
    seed_b = int(cols[1].number_input("Seed B", 0, 10_000, 2, key=f"{prefix}_seed_b"))
    points = cols[2].slider("Points", 3, 12, 8, key=f"{prefix}_points")
    label = None
    if run.num_classes:
        label = cols[3].selectbox("Class", range(run.num_classes), format_func=class_name(run),
                                  key=f"{prefix}_interp_label")
    if seed_a == seed_b:
        error_box("No path", f"seed A = seed B = {seed_a}: pick two different seeds")
        return
    steps, w = sampling.sampler.steps, sampling.sampler.guidance
    promise = sampling.promise("noise interpolation", points)
    if not opened(f"{prefix}_noise_path", run_key, (sampling.sampler, seed_a, seed_b, points, label), "Interpolate",
                  promise):
        return
    with working("Interpolating", promise):
        path = image_cache.noise_path(run_key, run, points, seed_a, seed_b, steps, label, w)
    st.image(path, caption=f"slerp between the two initial noises x_T, each decoded by deterministic DDIM "
                           f"({steps} steps{f', w = {w:g}' if sampling.conditional else ''})")


def analysis_sections(prefix: str, model: Model, sampling: Sampling) -> None:
    """The on-demand sections every image page has: filmstrip, memorisation, diversity, noise interpolation."""
    filmstrip_section(prefix, model, sampling)
    memorisation_section(prefix, model, sampling)
    diversity_section(prefix, model, sampling)
    noise_interpolation_section(prefix, model, sampling)


def model_sections(prefix: str, shipped: str | None, trained: Model | None) -> tuple[Model, Sampling] | None:
    """The model picker, then its sample grid and every on-demand analysis section (phases 2 and 4); returns the
    model and the grid's sampling for the page's own sections (None without a model)."""
    model = choose_model(prefix, shipped, trained)
    if model is None:
        return None
    sampling = samples_section(prefix, model)
    analysis_sections(prefix, model, sampling)
    return model, sampling
