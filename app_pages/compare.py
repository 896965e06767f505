"""Compare runs: every run (shipped, in checkpoints/, in a folder you name, trained in this session) in one table
with its configuration and final metrics; overlaid loss and metric curves; the design document's analysis by
architecture and hyperparameters."""

import streamlit as st

st.title("Compare runs")
with st.spinner("Loading PyTorch (once per server start)..."):
    from diffusion.explore import catalog
    from ui.views import charts, compare_view
    from ui.views.layout import error_box

st.caption("This page trains nothing: it reads each run's config.json and metrics.csv (never its weights), so it "
           "shows quickly. Runs you train on the other pages appear here for this session; runs trained "
           "with `python -m diffusion train --out checkpoints/NAME` appear for everyone.")


def all_columns(table) -> None:
    st.dataframe(table, hide_index=True, width="stretch", height="content", key="compare_table", column_config={
        "parameters": st.column_config.NumberColumn("parameters", format="localized"),
        "train_seconds": st.column_config.NumberColumn("training time (s)", format="%.1f"),
        "device": st.column_config.TextColumn("trained on"),
        "final_loss": st.column_config.NumberColumn(compare_view.LABELS["final_loss"], format="%.4f"),
        "lr": st.column_config.NumberColumn("lr", format="%.0e"),
    })


def runs_section() -> list:
    st.header("1. Runs")
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    left.text_input("Add a run folder (or a folder of run folders) on this server", key=compare_view.PATH_KEY,
                    placeholder="e.g. runs/mnist-ddp")
    right.button("Add", key="compare_add", icon=":material/add:", on_click=compare_view.add_folder)
    if compare_view.add_error():
        error_box("Cannot add this folder", compare_view.add_error())
    summaries = compare_view.all_runs()
    if not summaries:
        st.info("No runs yet: train one on a phase page, or add a folder above.")
        return []
    table = catalog.table(summaries)
    st.dataframe(compare_view.runs_overview(table), hide_index=True, width="stretch", height="content",
                 key="compare_overview")
    with st.expander(f"Every column ({len(table.columns)}: configuration, each metric's interval and floor, "
                     "protocol, path)"):
        all_columns(table)
    broken = [s for s in summaries if not s.ok]
    if broken:
        st.warning(f"{len(broken)} folder(s) could not be read: "
                   + "; ".join(f"{s.name}: {s.error}" for s in broken), icon=":material/warning:")
    st.caption("Quality: the last measurement in the run's history of its headline metric (FID on the dataset "
               "classifier's features for image runs, W1 for 2D runs) with its 95% interval, beside its floor (real "
               "data scored the same way at the same n); label accuracy for conditional image runs. Every column: "
               f"the configuration, every metric (W1, W2, KL; FID, accuracy) with its interval (_low, _high) and "
               f"floor (_floor), the protocol it was measured with and its n; final loss: the mean of the last "
               f"{catalog.LOSS_WINDOW} logged losses. "
               "Protocols starting with old· were measured before the protocol existed: no interval, and a floor "
               "at half the n. Training time is in seconds on the device named (trained on).")
    return [s for s in summaries if s.ok]


def curves_section(runs: list) -> None:
    st.header("2. Curves")
    names = [s.name for s in runs]
    picked = st.multiselect("Runs to overlay", names, default=compare_view.default_overlay(runs), key="compare_pick")
    cols = st.columns(2)
    x = cols[0].radio("Against", list(compare_view.X_AXES), format_func=compare_view.X_AXES.get, horizontal=True,
                      key="compare_x")
    log_y = cols[1].toggle("Log scale for the loss", value=True, key="compare_log")
    chosen = [s for s in runs if s.name in picked]
    if not chosen:
        st.info("Pick runs to overlay their curves.")
        return
    note = compare_view.device_note(catalog.table(chosen)) if x == "time" else None
    if note:
        st.warning(note, icon=":material/warning:")
    charts.show(compare_view.loss_overlay(catalog.loss_curves(chosen), x, log_y))
    metrics = catalog.metric_curves(chosen)
    if metrics.empty:
        st.caption("None of these runs logged quality measurements during training.")
        return
    protocol = compare_view.pick_protocol(metrics)
    metrics, left_out = compare_view.one_protocol(metrics, protocol)
    charts.panels(compare_view.metric_overlay, compare_view.metric_frame(metrics), x=x)
    st.caption(f"Protocol {protocol}; bars: 95% intervals; green band: the floor's 95% interval (real data scored the "
               "same way at the same n), from the lowest to the highest of the runs'." + (f" {left_out}" if left_out else ""))


def analysis_section(runs: list) -> None:
    st.header("3. Analysis by architecture and hyperparameters")
    table = catalog.table(runs)
    datasets = sorted(table["dataset"].unique())
    cols = st.columns(3)
    dataset = cols[0].selectbox("Runs on", ["all datasets", *datasets], key="compare_dataset")
    metric = cols[1].selectbox("Metric", compare_view.metric_options(table), format_func=lambda m: compare_view.LABELS[m],
                               key="compare_metric")
    axis_name = cols[2].selectbox("Against", list(compare_view.AXES), key="compare_axis")
    if dataset != "all datasets":
        table = table[table["dataset"] == dataset]
    if table[metric].notna().sum() == 0:
        st.info(f"No run here has a {compare_view.LABELS[metric]}.")
        return
    if metric in catalog.METRIC_ORDER:
        table = compare_view.comparable_runs(table, metric)
    elif metric == "train_seconds" and compare_view.device_note(table):
        st.warning(compare_view.device_note(table), icon=":material/warning:")
    charts.show(compare_view.analysis_chart(table, metric, compare_view.AXES[axis_name]))
    differ = catalog.differences(table)
    st.caption(compare_view.how_to_read(metric, axis_name) + (f" These runs differ in: {', '.join(differ)}."
                                                          if differ else ""))


runs = runs_section()
if runs:
    curves_section(runs)
    analysis_section(runs)
