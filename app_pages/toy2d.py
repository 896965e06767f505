"""Phase 1: diffusion on 2D toy data. Pick data, look at the forward process, train live, scrub the reverse
process, compare samplers, export. Sections 4-6 use this visitor's last finished model."""

import streamlit as st

st.title("Phase 1 · 2D toy data")
with st.spinner("Loading PyTorch (once per server start)..."):
    # Imported after the title: on a cold server these pull in PyTorch (seconds on a small CPU), and the
    # visitor should see the page start meanwhile.
    import pandas as pd

    from diffusion.core.schedules import SCHEDULES
    from diffusion.explore.toy2d import METRIC_N
    from diffusion.sampling.config import SamplerConfig
    from ui import charts, data2d, session_runs, toy2d_custom, toy2d_guidance, toy2d_io, training, training_view
    from ui.layout import error_box
    from ui.settings2d import BATCHES, DEPTHS, LRS, MEASURE_EVERY, T_OPTIONS, WIDTHS, restore

SCHEDULE_HELP = ("linear: DDPM's 1e-4..0.02 scaled by 1000/T · linear_unscaled: the same betas whatever T "
                 "(too little noise when T is small) · cosine: Nichol & Dhariwal 2021 · sigmoid: Chen 2023")
LOAD_MESSAGE = "toy2d_load_message"
FIELD_KINDS = {"direction": "x̂_0 − x_t", "score": "score (√ᾱ x̂_0 − x_t)/(1 − ᾱ)"}

st.caption("Every number below is computed live on this machine's CPU. Distances compare "
           f"{METRIC_N:,} samples with {METRIC_N:,} fresh true points, with a 95% interval; the floor is what a "
           f"perfect model scores ({METRIC_N:,} other true points, the band where 95% of them land).")


def data_section() -> str:
    st.header("1. Data")
    toy2d_custom.custom_expander()
    names = data2d.dataset_names()
    dataset = st.selectbox("Distribution", names, format_func=data2d.describe, key="toy2d_dataset")
    st.altair_chart(charts.scatter(data2d.points(dataset), f"{data2d.custom_name(dataset)}: 2,000 points"),
                    width="stretch")
    return dataset


def forward_section(dataset: str) -> tuple[str, int]:
    st.header("2. Forward process")
    left, right = st.columns(2)
    schedule = left.selectbox("Noise schedule", SCHEDULES, key="toy2d_schedule", help=SCHEDULE_HELP)
    T = right.select_slider("Number of steps T", T_OPTIONS, key="toy2d_T")
    charts.panels(charts.schedule_curves, charts.schedule_frame(data2d.schedule_curves(schedule, T)), by="quantity",
                  order=tuple(charts.SCHEDULE_LABELS.values()), per_row=3)
    end = data2d.terminal(schedule, T)
    cols = st.columns(3)
    cols[0].metric("ᾱ_T", f"{end.alpha_bar_T:.2e}")
    cols[1].metric("SNR_T = ᾱ_T / (1 − ᾱ_T)", f"{end.snr_T:.2e}")
    cols[2].metric("√ᾱ_T: share of x_0 left in x_T", f"{end.signal:.3f}")
    if end.far_from_normal:
        st.warning(f"x_T is far from N(0, I): it still holds {end.signal:.1%} of x_0 (√ᾱ_T), but sampling starts "
                   "from pure noise, so the model starts from inputs it never saw. Use more steps, the scaled "
                   "'linear' or 'cosine' schedule (Lin et al. 2024).", icon=":material/warning:")
    t = st.slider("Noising step t (0 = data)", 0, T, T // 10, key=f"toy2d_t_{T}")
    left, right = st.columns(2)
    left.altair_chart(charts.scatter(data2d.points(dataset), "x_0 (data)"), width="stretch")
    noised = data2d.noised(dataset, schedule, T, t)
    right.altair_chart(charts.scatter(noised, f"x_t at t = {t}", color="#f58518"), width="stretch")
    return schedule, T


def train_section(dataset: str, schedule: str, T: int) -> None:
    st.header("3. Train")
    st.markdown(f"An MLP learns to predict the noise ε on **{dataset}** with the **{schedule}** schedule, "
                f"T = {T} (sections 1 and 2). The defaults train moons close to the floor in about 20 s.")
    cols = st.columns(4)
    width = cols[0].select_slider("Width", WIDTHS, key="toy2d_width")
    depth = cols[1].slider("Depth (residual blocks)", *DEPTHS, key="toy2d_depth")
    lr = cols[2].select_slider("Learning rate", LRS, format_func="{:.0e}".format, key="toy2d_lr")
    batch = cols[3].select_slider("Batch size", BATCHES, key="toy2d_batch")
    cols = st.columns(3)
    budget = cols[0].radio("Budget", ["steps", "seconds"], horizontal=True, key="toy2d_budget")
    if budget == "steps":
        steps, seconds = cols[1].slider("Steps", 100, 20_000, step=100, key="toy2d_steps"), None
    else:
        steps, seconds = None, cols[1].slider("Seconds", 5, 120, key="toy2d_seconds")
    every = cols[2].select_slider("Measure W1, W2, KL every", MEASURE_EVERY, key="toy2d_every",
                                  format_func=lambda n: f"{n} steps" if n else "never")
    st.caption(f"A measurement draws {METRIC_N:,} samples with DDIM-50 and compares them with {METRIC_N:,} true "
               "points (intervals: the delta method for W, a bootstrap for KL): about 0.5 s, taken from training "
               "time (and measured again at the end); the floor is drawn once, before training starts.")
    config = data2d.run_config(dataset, schedule, T, width, depth, lr, batch, steps or 4000)
    training_view.train_buttons(config, steps, seconds, every)
    training_view.show_training(training.current_job())


def model_caption(run) -> None:
    cfg = run.config
    st.caption(f"Model: {cfg.data.dataset} · {cfg.schedule.name} T={cfg.schedule.timesteps} · MLP "
               f"{cfg.model.width}×{cfg.model.depth} · step {run.step:,} (EMA weights)")


def reverse_section(model) -> None:
    st.header("4. Reverse process")
    if model is None:
        st.info("Train a model (section 3) or load a checkpoint (section 6) to see it denoise.")
        return
    run_key, run = model
    model_caption(run)
    T = run.schedule.T
    cols = st.columns(2)
    name = cols[0].radio("Sampler", data2d.SAMPLERS, format_func=str.upper, horizontal=True, key="toy2d_traj_sampler")
    options = data2d.step_options(T)
    steps = cols[1].select_slider("Sampling steps", options, value=min(100, T), key=f"toy2d_traj_steps_{T}")
    traj = data2d.trajectory(run_key, run, SamplerConfig(name, steps=steps))
    frame = st.slider("Denoising step (0 = x_T, pure noise)", 0, steps, steps, key=f"toy2d_frame_{steps}")
    x_t, x0_hat, t = data2d.frame_points(traj, frame)
    cols = st.columns(3)
    cols[0].altair_chart(charts.scatter(x_t, f"x_t at t = {t}" if t else "x_0 (output)"), width="stretch")
    cols[1].altair_chart(charts.scatter(x0_hat, "predicted x_0 (x̂_0)", color="#54a24b"), width="stretch")
    cols[2].altair_chart(charts.paths(data2d.paths(traj)), width="stretch")
    fields_subsection(run_key, run)


def fields_subsection(run_key: str, run) -> None:
    st.subheader("Denoising direction")
    T = run.schedule.T
    cols = st.columns(2)
    t = cols[0].slider("At step t", 1, T, max(1, T // 5), key=f"toy2d_field_t_{T}")
    kind = cols[1].radio("Arrows", list(FIELD_KINDS), format_func=FIELD_KINDS.get, horizontal=True,
                         key="toy2d_field_kind")
    learned, exact = data2d.fields(run_key, run, t, kind)
    cols = st.columns(2)
    cols[0].altair_chart(charts.field(learned, f"learned, t = {t}"), width="stretch")
    if exact is not None:
        cols[1].altair_chart(charts.field(exact, f"exact E[x_0 | x_t], t = {t}"), width="stretch")
        st.altair_chart(charts.field_error(data2d.field_errors(run_key, run)), width="stretch")
    else:
        cols[1].info("The exact field is known for Gaussian mixtures only (gaussian, 8gaussians, 25gaussians).")
    st.caption("Arrows share one scale per t (lengths clipped at 1.5 grid cells).")


def samplers_section(model) -> pd.DataFrame | None:
    st.header("5. Samplers")
    if model is None:
        st.info("Train a model first.")
        return None
    run_key, run = model
    model_caption(run)
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
    cols = st.columns(2)
    cols[0].altair_chart(charts.scatter(samples, f"{METRIC_N:,} samples", color="#e45756"), width="stretch")
    cols[1].altair_chart(charts.scatter(data2d.points(run.config.data.dataset), "true data"), width="stretch")
    try:
        result = data2d.metrics(run_key, run, sampler)
        st.dataframe(data2d.metrics_table(result), width="stretch")
        st.caption(f"95% intervals; n = {result.n:,}; {result.protocol.name}")
    except ValueError as e:
        error_box("No metrics for these samples", e)
    if st.toggle("Sweep the number of steps (5 to 1000, about 10 s)", key="toy2d_sweep"):
        sweep = data2d.sweep(run_key, run, name, sampler.eta)
        st.dataframe(data2d.sweep_table(sweep), hide_index=True, width="stretch")
        long = charts.label_metrics(data2d.sweep_curves(sweep))
        charts.panels(charts.metric_curves, long, x_title="sampling steps", log_x=True)
        st.caption("Each number with its 95% interval; the green band is the floor (labelled) at the same n.")
    return samples


def export_section(samples: pd.DataFrame | None) -> None:
    st.header("6. Export and import")
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
              on_click=toy2d_io.load_uploaded, args=("toy2d_upload", LOAD_MESSAGE))
    toy2d_io.show_load_result(LOAD_MESSAGE)


def share_model(model) -> None:
    """List this visitor's finished model on the compare page (one entry per model; training on updates it)."""
    if model is not None:
        run = model[1]
        session_runs.register(f"2D {run.config.data.dataset} · model {training.current_job().id[:6]}", run)


restore()
dataset = data_section()
schedule, T = forward_section(dataset)
train_section(dataset, schedule, T)
model = training.current_run()
share_model(model)
reverse_section(model)
export_section(samplers_section(model))
toy2d_guidance.guidance_section()
