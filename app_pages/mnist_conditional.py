"""Phase 3: all ten digits, class-conditional. One row per class from the same noises under a guidance slider at
once; on demand the guidance trade-off, generated against training class shares, label interpolation, the analytic
denoisers of each class beside the network and conditioning by addition versus cross-attention; training on an
imbalanced class mix."""

import streamlit as st

st.title("Phase 3 · conditional MNIST")
with st.spinner("Loading PyTorch (once per server start)..."):
    from diffusion.config import DataConfig
    from ui.images import image_analytic, image_conditional, image_sections, image_training
    from ui.jobs import shipped_runs
    from ui.views.layout import error_box

st.caption("One U-Net for all ten digits: the label is embedded and added to the time embedding (or attended to), "
           "and dropped 10% of the time so the same network also predicts without it (classifier-free guidance). "
           "Every costlier section than the grid runs when asked, says how long it takes on this machine (timed "
           "here, for the load now), and is cached.")

st.header("1. Train (optional): choose the class mix")
if image_training.train_toggle("cond", required=not shipped_runs.has_shipped("cond")):
    with st.expander("Class proportions (all 1: the balanced training set)"):
        cols = st.columns(5)
        weights = tuple(cols[c % 5].slider(f"digit {c}", 0.0, 1.0, 1.0, 0.1, key=f"cond_weight_{c}")
                        for c in range(10))
    conditioning = st.radio("Conditioning", ("add", "cross"), horizontal=True, key="cond_conditioning",
                            format_func={"add": "label added to the time embedding",
                                         "cross": "cross-attention to label tokens"}.get)
    if sum(weights) == 0:
        error_box("No training data", "every class proportion is 0; give at least one class a weight")
        trained = None
    else:
        balanced = len(set(weights)) == 1
        data = DataConfig(dataset="mnist", image_size=16, class_weights=None if balanced else weights)
        trained = image_training.training_section("cond", data, conditional=True, conditioning=conditioning,
                                                  name="Phase 3 · conditional" + ("" if balanced else " (imbalanced)"))
else:
    trained = image_training.trained_model("cond")

st.header("2. The model")
model = image_sections.choose_model("cond", "cond", trained)
if model is not None:
    sampling = image_sections.samples_section("cond", model)
    image_conditional.guidance_sweep_section("cond", model, sampling)
    image_conditional.histogram_section("cond", model, sampling)
    image_conditional.label_interpolation_section("cond", model, sampling)
    image_sections.analysis_sections("cond", model, sampling)
    image_analytic.analytic_section("cond", model, sampling)
    image_conditional.conditioning_comparison("cond")
