"""Sections every image page shares, for one model (run_key, Run): which model, a grid of samples, the denoising
filmstrip, memorisation (nearest training images), diversity, and interpolation between two noises."""

import streamlit as st

from diffusion.runs import Run, SamplerConfig

from . import image_cache
from .layout import error_box

Model = tuple[str, Run]
STEP_OPTIONS = (10, 20, 50, 100, 250)
GUIDANCE_FORMULA = ("Classifier-free guidance (Ho & Salimans 2022): guided = uncond + w (cond − uncond); w = 1 is "
                    "the plain conditional model, w = 0 ignores the label, w > 1 pushes towards it.")


def choose_model(prefix: str, shipped: str | None, trained: Model | None) -> Model | None:
    """The shipped run image_cache.SHIPPED[shipped] (if any) or this visitor's trained model, as the visitor picks."""
    run = image_cache.shipped_run(shipped) if shipped else None
    options = (["shipped"] if run is not None else []) + (["trained"] if trained is not None else [])
    if not options:
        missing = f"the shipped run (checkpoints/{image_cache.SHIPPED[shipped]}) is not in this copy; " if shipped \
            else ""
        st.info(f"No model yet: {missing}train one above.", icon=":material/info:")
        return None
    labels = {"shipped": f"shipped run ({image_cache.SHIPPED.get(shipped)})", "trained": "the model you trained"}
    pick = st.radio("Model", options, format_func=labels.get, horizontal=True, key=f"{prefix}_model")
    model = (image_cache.shipped_key(shipped), run) if pick == "shipped" else trained
    model_caption(model[1])
    return model


def model_caption(run: Run) -> None:
    cfg, m = run.config, run.config.model
    cond = f"conditional ({m.conditioning}), {m.num_classes} classes" if m.num_classes else "unconditional"
    classes = f" classes {list(cfg.data.classes)}" if cfg.data.classes else ""
    st.caption(f"Model: {cfg.data.dataset}{classes} {m.image_size}x{m.image_size}x{m.channels} · U-Net "
               f"{m.base_width}x{list(m.channel_mult)} · {cond} · {cfg.schedule.name} T={cfg.schedule.timesteps} · "
               f"step {run.step:,} (EMA weights)")


def sampler_controls(prefix: str, run: Run, default_steps: int = 20) -> SamplerConfig:
    """DDIM (eta 0) or DDPM with a number of steps, and the guidance scale for conditional runs."""
    cols = st.columns(3)
    name = cols[0].radio("Sampler", ("ddim", "ddpm"), format_func=str.upper, horizontal=True, key=f"{prefix}_sampler")
    options = [s for s in STEP_OPTIONS if s <= run.schedule.T]
    steps = cols[1].select_slider("Sampling steps", options, default_steps, key=f"{prefix}_sample_steps")
    w = 1.0
    if run.num_classes:
        w = cols[2].slider("Guidance scale w", 0.0, 8.0, 1.0, 0.5, key=f"{prefix}_w", help=GUIDANCE_FORMULA)
    return SamplerConfig(name, steps=steps, guidance=w)


def samples_section(prefix: str, model: Model) -> SamplerConfig:
    """A grid of samples; returns the sampler chosen (the sections below use it)."""
    st.header("Samples")
    run_key, run = model
    sampler = sampler_controls(prefix, run)
    cols = st.columns(2)
    n = cols[0].select_slider("Images", (16, 36, 64), 36, key=f"{prefix}_n")
    seed = int(cols[1].number_input("Seed", 0, 10_000, 0, key=f"{prefix}_seed"))
    st.image(image_cache.grid(run_key, run, n, sampler, seed),
             caption=f"{n} samples, {sampler.name.upper()} {sampler.steps} steps, seed {seed}"
                     + (" (labels cycle through the classes)" if run.num_classes else ""))
    return sampler


def filmstrip_section(prefix: str, model: Model, sampler: SamplerConfig) -> None:
    st.header("Denoising filmstrip")
    run_key, run = model
    frames = st.slider("Frames", 3, min(10, sampler.steps + 1), min(6, sampler.steps + 1), key=f"{prefix}_frames")
    strip = image_cache.filmstrip(run_key, run, sampler, 4, frames)
    ts = ", ".join(f"t={t}" if t else "output" for t in strip.timesteps)
    cols = st.columns(2)
    cols[0].image(strip.x_t, caption=f"x_t, left to right: {ts}")
    cols[1].image(strip.x0_hat, caption="predicted x0 (x̂_0) at the same steps: the model's guess of the end")
    st.caption(f"Four samples ({sampler.name.upper()}, {sampler.steps} steps, seed 0): early x̂_0 is a blurry "
               "average of plausible images; it sharpens as t falls.")


def memorisation_section(prefix: str, model: Model, sampler: SamplerConfig) -> None:
    st.header("Memorisation: each sample beside its nearest training image")
    run_key, run = model
    try:
        memo = image_cache.memorisation(run_key, run, 16, sampler)
    except (ValueError, OSError) as e:
        error_box("No memorisation check", e)
        return
    st.image(memo.pairs, caption="Pairs: a sample, then its nearest training image (L2 in pixels)")
    ratios = sorted(memo.ratio)
    st.caption(f"Distance to the nearest training image over the typical distance of a held-out real image: "
               f"median {ratios[len(ratios) // 2]:.2f} (1 = as novel as fresh data, 0 = a copy); {memo.copies} of "
               f"16 samples below 0.3 (held-out real images: {memo.copy_floor:.0%} flagged).")


def diversity_section(prefix: str, model: Model, sampler: SamplerConfig) -> None:
    st.header("Diversity")
    run_key, run = model
    d = image_cache.diversity(run_key, run, 64, sampler)
    cols = st.columns(2)
    cols[0].metric("Mean pairwise distance, 64 samples", f"{d['samples']:.2f}")
    cols[1].metric("Same, 64 real training images", f"{d['real']:.2f}")
    st.caption("L2 distance between images in [-1, 1] pixels. Far below the real value: mode collapse or "
               "memorisation; far above: noise.")


def noise_interpolation_section(prefix: str, model: Model, sampler: SamplerConfig) -> None:
    st.header("Interpolation between two noises")
    run_key, run = model
    cols = st.columns(4)
    seed_a = int(cols[0].number_input("Seed A", 0, 10_000, 1, key=f"{prefix}_seed_a"))
    seed_b = int(cols[1].number_input("Seed B", 0, 10_000, 2, key=f"{prefix}_seed_b"))
    points = cols[2].slider("Points", 3, 12, 8, key=f"{prefix}_points")
    label = None
    if run.num_classes:
        label = cols[3].selectbox("Class", range(run.num_classes), key=f"{prefix}_interp_label")
    if seed_a == seed_b:
        error_box("No path", f"seed A = seed B = {seed_a}: pick two different seeds")
        return
    st.image(image_cache.noise_path(run_key, run, points, seed_a, seed_b, sampler.steps, label, sampler.guidance),
             caption=f"slerp between the two initial noises x_T, each decoded by deterministic DDIM "
                     f"({sampler.steps} steps)")


def analysis_sections(prefix: str, model: Model | None) -> None:
    """Samples, filmstrip, memorisation, diversity and noise interpolation of one model."""
    if model is None:
        return
    sampler = samples_section(prefix, model)
    filmstrip_section(prefix, model, sampler)
    memorisation_section(prefix, model, sampler)
    diversity_section(prefix, model, sampler)
    noise_interpolation_section(prefix, model, sampler)
