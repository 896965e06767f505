"""The 2D page's sections, one function each, in page order (app_pages/toy2d.py calls them): data, forward process,
training, the shipped runs, reverse process and denoising fields, samplers, diffusion vs flow matching and the
likelihood, export and import."""

import pandas as pd
import streamlit as st

from diffusion.core.schedules import SCHEDULES
from diffusion.explore.toy2d_experiments import METRIC_N
from diffusion.sampling.sampler_config import SamplerConfig

from ui.jobs import session_runs, training
from ui.toy2d import animate2d, checkpoint_upload, custom2d, data2d, flow2d, models2d, plots2d, settings2d, training2d
from ui.toy2d.settings2d import BATCHES, DECAYS, DEPTHS, LRS, MEASURE_EVERY, OBJECTIVES, T_OPTIONS, WIDTHS
from ui.views import charts, training_view
from ui.views.layout import error_box

SCHEDULE_HELP = ("linear: DDPM's 1e-4..0.02 scaled by 1000/T · linear_unscaled: the same betas whatever T "
                 "(too little noise when T is small) · cosine: Nichol & Dhariwal 2021 · sigmoid: Chen 2023")
LOAD_MESSAGE = "toy2d_load_message"
FIELD_KINDS = {"direction": "x̂_0 − x_t", "score": "score (√ᾱ x̂_0 − x_t)/(1 − ᾱ)"}
FIELD_SIZES = (9, 13, 17, 21, 25, 33, 41)
SPEED_HELP = "Frames per second of the animation; it plays in your browser (no server round trip per frame)"


def speed(key: str) -> int:
    """The playback-speed setting of one animation: milliseconds per frame."""
    return animate2d.SPEEDS[st.select_slider("Playback speed", list(animate2d.SPEEDS), value="1×", key=key,
                                             help=SPEED_HELP)]


def data_section() -> str:
    st.header("1. Data")
    custom2d.custom_expander()
    names = data2d.dataset_names()
    dataset = st.selectbox("Distribution", names, format_func=data2d.describe, key="toy2d_dataset",
                           on_change=settings2d.take_recipe, help="The training settings (section 3) follow its recipe")
    grid = data2d.density(dataset)
    st.plotly_chart(plots2d.cloud(data2d.points(dataset), f"{data2d.custom_name(dataset)}: 2,000 points over its "
                                  f"{grid.label}", grid),
                    key="toy2d_data_plot")
    st.caption("Contours: the exact density for Gaussian mixtures; otherwise a Gaussian kernel estimate from 1,000 "
               "other true points, its bandwidth chosen by held-out likelihood (explore.densities).")
    return dataset


def forward_section(dataset: str) -> tuple[str, int]:
    st.header("2. Forward process")
    left, right = st.columns(2)
    schedule = left.selectbox("Noise schedule", SCHEDULES, key="toy2d_schedule", help=SCHEDULE_HELP)
    T = right.select_slider("Number of steps T", T_OPTIONS, key="toy2d_T")
    t = st.slider("Noising step t (0 = data)", 0, T, T // 10, key=f"toy2d_t_{T}")
    charts.panels(charts.schedule_curves, charts.schedule_frame(data2d.schedule_curves(schedule, T)), by="quantity",
                  order=tuple(charts.SCHEDULE_LABELS.values()), per_row=3, t=t)
    end = data2d.terminal(schedule, T)
    cols = st.columns(3)
    cols[0].metric("ᾱ_T", f"{end.alpha_bar_T:.2e}")
    cols[1].metric("SNR_T = ᾱ_T / (1 − ᾱ_T)", f"{end.snr_T:.2e}")
    cols[2].metric("√ᾱ_T: share of x_0 left in x_T", f"{end.signal:.3f}")
    if end.far_from_normal:
        st.warning(f"x_T is far from N(0, I): it still holds {end.signal:.1%} of x_0 (√ᾱ_T), but sampling starts "
                   "from pure noise, so the model starts from inputs it never saw. Use more steps, the scaled "
                   "'linear' or 'cosine' schedule (Lin et al. 2024).", icon=":material/warning:")
    left, right = st.columns(2)
    noised = data2d.density(dataset, schedule, T, t)
    left.plotly_chart(plots2d.cloud(data2d.noised(dataset, schedule, T, t), f"x_t at t = {t} over its density",
                                    noised, plots2d.COLOURS["noised"]), key="toy2d_xt_plot")
    with right:
        st.plotly_chart(data2d.forward_animation(dataset, schedule, T, speed("toy2d_forward_speed")),
                        key="toy2d_forward_anim")
    st.caption("Each point keeps its own ε for every t, so it slides from its x_0 toward ε along "
               "x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε; under it, the density of x_t (each mixture component's covariance "
               "grows to ᾱ_t C + (1 − ᾱ_t) I: exact for mixtures and for the kernel estimate).")
    return schedule, T


def train_section(dataset: str, schedule: str, T: int) -> None:
    st.header("3. Train")
    st.markdown(f"An MLP learns to denoise **{data2d.custom_name(dataset)}** with the **{schedule}** schedule, T = {T} (sections 1 and "
                f"2). The settings start from its recipe, tuned to reach W1 within 1.25× its floor in about "
                "10 s of training on 2 idle CPU cores (README, Phase 1); they take the recipe again when you pick "
                "another distribution.")
    cols = st.columns(4)
    width = cols[0].select_slider("Width", WIDTHS, key="toy2d_width")
    depth = cols[1].slider("Depth (residual blocks)", *DEPTHS, key="toy2d_depth")
    lr = cols[2].select_slider("Learning rate", LRS, format_func="{:.0e}".format, key="toy2d_lr")
    batch = cols[3].select_slider("Batch size", BATCHES, key="toy2d_batch")
    cols = st.columns(2)
    objective = cols[0].radio("The network predicts", list(OBJECTIVES), format_func=OBJECTIVES.get,
                              horizontal=True, key="toy2d_objective")
    decay = cols[1].radio("Learning rate schedule (after a warm-up)", list(DECAYS), format_func=DECAYS.get,
                          horizontal=True, key="toy2d_decay")
    cols = st.columns(3)
    budget = cols[0].radio("Budget", ["steps", "seconds"], horizontal=True, key="toy2d_budget")
    if budget == "steps":
        steps, seconds = cols[1].slider("Steps", 100, 20_000, step=100, key="toy2d_steps"), None
    else:
        steps, seconds = None, cols[1].slider("Seconds", 5, 120, key="toy2d_seconds")
    every = cols[2].select_slider("Measure W1, W2, KL every", MEASURE_EVERY, key="toy2d_every",
                                  format_func=lambda n: f"{n} steps" if n else "never")
    config = settings2d.run_config(dataset, schedule, T, width, depth, lr, batch, objective, decay, steps or 4000)
    st.caption(f"A measurement draws {METRIC_N:,} samples with DDIM-50 against {METRIC_N:,} true points, taken from "
               "training time (and measured again at the end); the floor is drawn once, before training starts.")
    training_view.train_buttons(config, steps, seconds, every, training2d.TOY2D)
    training_view.show_training(training.current_job(), training2d.TOY2D)


def shipped_block():
    """The shipped runs, offered so that sections 4 on work at once; returns the current model."""
    model = models2d.current_model()
    st.markdown("**Or start from a shipped run** (trained longer, 16,000 steps; it becomes your current model "
                "for sections 4 on, until you train again):")
    models2d.shipped_buttons(model)
    return models2d.current_model()


def model_caption(run_key: str, run) -> None:
    cfg = run.config
    st.caption(f"Model: {models2d.describe(run_key, run)} · {cfg.data.dataset} · {cfg.schedule.name} "
               f"T={cfg.schedule.timesteps} · predicts {cfg.train.objective} · MLP {cfg.model.width}×"
               f"{cfg.model.depth} · step {run.step:,} (EMA weights)")


def reverse_section(model) -> None:
    st.header("4. Reverse process")
    if model is None:
        st.info("Train a model or use a shipped run (section 3), or load a checkpoint (section 8), to see it denoise.")
        return
    run_key, run = model
    model_caption(run_key, run)
    T = run.schedule.T
    cols = st.columns(3)
    name = cols[0].radio("Sampler", data2d.SAMPLERS, index=data2d.SAMPLERS.index("ddim"), format_func=str.upper,
                         horizontal=True, key="toy2d_traj_sampler")
    steps = cols[1].select_slider("Sampling steps", data2d.step_options(T), value=min(100, T),
                                  key=f"toy2d_traj_steps_{T}")
    with cols[2]:
        duration = speed("toy2d_reverse_speed")
    traj = data2d.trajectory(run_key, run, SamplerConfig(name, steps=steps))
    grid = data2d.density(run.config.data.dataset)
    with st.container(key="toy2d_reverse_anim"):
        st.plotly_chart(animate2d.reverse(traj, 24, grid, duration), key="toy2d_reverse_plot")
    st.caption(f"300 particles from x_T (pure noise) to x_0 with {name.upper()}-{steps} (at most "
               f"{animate2d.MAX_FRAMES} frames shown), over the data's density; 24 paths drawn whole, the red dots "
               "mark where their particles are now. Show x̂_0 (the model's guess of x_0 at each step) from the legend.")
    fields_subsection(run_key, run)


def fields_subsection(run_key: str, run) -> None:
    st.subheader("Denoising direction")
    cfg = run.config
    T = run.schedule.T
    cols = st.columns(3)
    t = cols[0].slider("At step t", 1, T, max(1, T // 5), key=f"toy2d_field_t_{T}")
    kind = cols[1].radio("Arrows", list(FIELD_KINDS), format_func=FIELD_KINDS.get, horizontal=True,
                         key="toy2d_field_kind")
    size = cols[2].select_slider("Grid (arrows per side)", FIELD_SIZES, value=21, key="toy2d_field_size")
    learned, exact = data2d.fields(run_key, run, t, kind, size)
    grid = data2d.density(cfg.data.dataset, cfg.schedule.name, cfg.schedule.timesteps, t)
    first, second = plots2d.field_pair(learned, exact, t, grid)
    cols = st.columns(2)
    cols[0].plotly_chart(first, key="toy2d_field_learned")
    if second is not None:
        cols[1].plotly_chart(second, key="toy2d_field_exact")
    else:
        cols[1].info("The exact field is known for Gaussian mixtures only (gaussian, 8gaussians, 25gaussians).")
    st.caption("Arrows share one length scale per t (the 95th-percentile length drawn as 0.9 grid cells, clipped at "
               "1.5) and one colour scale (their length); under them, the density of x_t at this t.")


def samplers_section(model) -> pd.DataFrame | None:
    st.header("5. Samplers")
    if model is None:
        st.info("Train a model or use a shipped run first (section 3).")
        return None
    run_key, run = model
    model_caption(run_key, run)
    T = run.schedule.T
    cols = st.columns(3)
    name = cols[0].radio("Sampler", data2d.SAMPLERS, format_func=str.upper, horizontal=True, key="toy2d_sampler")
    eta = cols[1].slider("η (DDIM; 1 over every step = DDPM)", 0.0, 1.0, 0.0, 0.1, key="toy2d_eta",
                         disabled=name != "ddim")
    steps = cols[2].select_slider("Sampling steps", data2d.step_options(T), value=min(50, T), key=f"toy2d_n_{T}")
    sampler = SamplerConfig(name, steps=steps, eta=eta if name == "ddim" else 0.0)
    st.caption(f"Timesteps used ({steps}): {data2d.describe_timesteps(T, steps)}. Seed 0: the same initial "
               "noise x_T for every choice.")
    samples = data2d.samples(run_key, run, sampler)
    dataset = run.config.data.dataset
    cols = st.columns(2)
    cols[0].plotly_chart(plots2d.cloud(samples, f"{METRIC_N:,} samples over the data's density",
                                       data2d.density(dataset), plots2d.COLOURS["samples"], "samples"),
                         key="toy2d_samples_plot")
    try:                                  # below the plot, full width: the table never scrolls inside itself
        result = data2d.metrics(run_key, run, sampler)
        st.dataframe(data2d.metrics_table(result), width="stretch", height="content")
        st.caption(f"95% intervals; n = {result.n:,}; {result.protocol.name}")
    except ValueError as e:
        error_box("No metrics for these samples", e)
    if st.toggle("Sweep the number of steps (5 to 1000)", key="toy2d_sweep"):
        sweep = data2d.sweep(run_key, run, name, sampler.eta)
        st.dataframe(data2d.sweep_table(sweep), hide_index=True, width="stretch", height="content")
        long = charts.label_metrics(data2d.sweep_curves(sweep))
        charts.panels(charts.metric_curves, long, x_title="sampling steps", log_x=True)
        st.caption("Each number with its 95% interval; the green band is the floor (labelled) at the same n.")
    return samples


def flow_sections(model) -> None:
    st.header("6. Diffusion vs flow matching")
    flow2d.comparison_section(model)
    st.header("7. Likelihood")
    flow2d.likelihood_section(model)


def export_section(samples: pd.DataFrame | None) -> None:
    st.header("8. Export and import")
    job = training.current_job()
    cols = st.columns(2)
    if samples is not None:
        cols[0].download_button("Samples (CSV)", samples.to_csv(index=False), "samples.csv", "text/csv",
                                key="toy2d_dl_samples", icon=":material/download:")
    if job is not None and job.run is not None:
        cols[1].download_button("Checkpoint (zip)", job.checkpoint_zip, f"toy2d-{job.run_key}.zip",
                                "application/zip", key="toy2d_dl_ckpt", disabled=job.running or bool(job.unhealthy),
                                icon=":material/download:", on_click="ignore")
    st.file_uploader("Load a checkpoint (.zip from this page; the current model is replaced)", type="zip",
                     key="toy2d_upload")
    st.button("Load checkpoint", key="toy2d_load", disabled=job is not None and job.running,
              on_click=checkpoint_upload.load_uploaded, args=("toy2d_upload", LOAD_MESSAGE))
    checkpoint_upload.show_load_result(LOAD_MESSAGE)


def share_model(model) -> None:
    """List this visitor's own finished model on the compare page (one entry per model; training on updates it)."""
    if model is not None and not models2d.is_shipped(model[0]):
        run = model[1]
        session_runs.register(f"2D {run.config.data.dataset} · model {training.current_job().id[:6]}", run)
