"""Phase 2: MNIST 16x16, one digit. Look at the shipped run's samples at once, then on demand the denoising
filmstrip, memorisation, diversity and interpolation, the analytic denoisers beside the network and the
training-set-size sweep; or train a U-Net live (loss, samples and FID while it trains)."""

import streamlit as st

st.title("Phase 2 · MNIST 16x16, one digit")
with st.spinner("Loading PyTorch (once per server start)..."):
    from diffusion.config import DataConfig
    from ui.images import image_analytic, image_sections, image_training
    from ui.jobs import shipped_runs

st.caption("A small U-Net learns the noise ε on the images of one digit (Ho et al. 2020). FID is measured on the "
           "shipped MNIST classifier's features, with its floor (real images against real images) at the same "
           "number of samples. Training says how long its settings take on this machine before you start, and every "
           "costlier section says how long it expects: times measured here, for the load now.")

st.header("1. Data and training")
digit = st.selectbox("Digit", range(10), key="digit_digit")
shipped = "digit0" if digit == 0 and shipped_runs.has_shipped("digit0") else None
if digit != 0:
    st.caption(f"The shipped run is of digit 0; for digit {digit}, train a model.")
trained = image_training.train_or_trained("digit", shipped is None,
                                          DataConfig(dataset="mnist", image_size=16, classes=(digit,)),
                                          conditional=False, name=f"Phase 2 · digit {digit}")

st.header("2. The model")
shown = image_sections.model_sections("digit", shipped, trained)
if shown is not None:
    image_analytic.analytic_section("digit", *shown)

st.header("3. Why it makes new images")
image_analytic.size_sweep_section("digit")
