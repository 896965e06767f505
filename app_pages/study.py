"""Quality versus network evaluations: for one run and one bank of initial noises, sweep samplers x NFE and plot
quality, wall time, the published curves on a relative axis, and numerical stability."""

import streamlit as st

st.title("Quality vs steps")
with st.spinner("Loading PyTorch (once per server start)..."):
    from diffusion.explore.nfe_study import NFE_TARGETS, PRECISIONS, best_at, goal_line, protocol_line, quality_metrics
    from diffusion.sampling.registry import SAMPLERS
    from ui.views import charts, study_budget_view, study_view

st.markdown("Every sampler starts from the **same initial noises** (sample *i* of the seed draws its own noise "
            "stream) and, for conditional runs, the same balanced labels. Each row reports the network evaluations "
            "(NFE) actually used (Heun: 2 steps − 1), the sampling wall time, the quality against the truth with its "
            "floor (what an independent true sample scores), and the stability of the trajectories. The reference "
            "is DDPM over all T steps.")

runs = study_view.runs()
if not runs:
    st.info("No run to study yet: the shipped runs appear under checkpoints/, and models you train on the other "
            "pages are listed here.")
    st.stop()
label = st.selectbox("Run", list(runs), key="study_run")
run_key, run = runs[label]
image = run.is_image
# Full width, each: every chip in view at 1,024 px (in two columns they scroll sideways inside themselves)
samplers = st.multiselect("Samplers", SAMPLERS, default=list(SAMPLERS), key="study_samplers")
nfe = st.multiselect("NFE targets", NFE_TARGETS, default=[5, 10, 20, 50] if image else [5, 10, 20, 50, 100],
                     key=f"study_nfe_{image}")
cols = st.columns(3)
n = cols[0].select_slider("Samples", [16, 32, 64, 128, 256, 500, 1000, 2000, 5000], value=64 if image else 500,
                          key=f"study_n_{image}")
precisions = cols[1].multiselect("Network precision", list(PRECISIONS), default=["float32"], key="study_precision",
                                 help="bfloat16 / float16: the network's weights and matmuls in that type, the "
                                      "sampler's arithmetic in float32. float16 on a CPU is slow.")
reference = cols[2].toggle("DDPM reference", value=not image, key=f"study_ref_{image}",
                           help=f"DDPM over all {run.schedule.T} steps ({run.schedule.T} NFE), the curves' yardstick")

if not (samplers and nfe and precisions):
    st.info("Pick at least one sampler, one NFE target and one precision.")
    st.stop()
inputs = dict(samplers=tuple(samplers), nfe_targets=tuple(sorted(nfe)), n=n, precisions=tuple(precisions),
              reference=reference)
key = (run_key, *inputs.items())
promise = study_view.promise(run_key, run, **inputs)
full = study_view.promise(run_key, run, tuple(SAMPLERS), NFE_TARGETS, 500, ("float32",), True)
st.caption(f"Expected time for this sweep on this machine: {promise.text()} (the run's sampling timed here, for the "
           f"load now). The full sweep ({len(NFE_TARGETS)} NFE values up to {max(NFE_TARGETS)}, {len(SAMPLERS)} "
           f"samplers, 500 samples, with the DDPM reference) would take {full.text()}: run that one with "
           "`python -m diffusion study` or `benchmarks/study_table.py`, on a GPU if you have one.")
frame = study_view.stored(key)
shipped = study_view.shipped_study(run_key, inputs) if frame is None else None
if st.button("Run the sweep" if shipped is None else "Run the sweep again here", key="study_go", type="primary",
             disabled=frame is not None):
    frame = study_view.run_with_bar("sweep", promise,
                                    lambda progress: study_view.run_study(key, run, promise, progress, **inputs))
if frame is None and shipped is not None:
    frame = shipped
    st.caption(f"Drawn below: the sweep shipped with this run, for these settings (`{study_view.SHIPPED_COMMAND}`); "
               "the button re-runs it on this server.")
if frame is None:
    st.stop()

metrics = quality_metrics(run)
headline = "fid" if image else "w1"
best = best_at(frame)
(st.success if best and best.met else st.warning)(goal_line(frame))
if best and best.reference_nfe < 1000:
    st.caption(f"The reference here is DDPM with {best.reference_nfe} NFE, not 1000.")
study_view.quality_charts(frame, metrics)
st.caption(f"Bars: 95% intervals; the green band is the floor at the same n. {protocol_line(frame)}")
charts.show(study_view.time_chart(frame))
charts.show(study_view.literature_chart(frame, headline))
study_budget_view.section(run_key, run, key, inputs)
st.subheader("Stability")
st.caption("max |x|: the largest coordinate along the trajectories, in the sampler's own space (VP x_t for "
           "DDPM/DDIM; x_t / √ᾱ_t, up to σ_max ≈ 80 times the noise, for Euler, Heun and DPM-Solver++); non-finite: "
           "samples with NaN or inf (their quality is not measured)." + study_view.stability_note(frame))
st.dataframe(study_view.stability_table(frame), hide_index=True, width="stretch", height="content", column_config={
    column: st.column_config.NumberColumn(label, format="%.4g") if column.startswith(("max", "nfe", "non"))
    else st.column_config.TextColumn(label) for column, label in study_view.STABILITY_COLUMNS.items()})
with st.expander("All results"):
    st.dataframe(frame, hide_index=True, width="stretch", height="content")
    st.download_button("Download (CSV)", frame.to_csv(index=False), "study.csv", "text/csv", key="study_dl")
