"""Phase 2: MNIST 16x16, one digit. Look at the shipped run's samples at once, then on demand the denoising
filmstrip, memorisation, diversity and interpolation; or train a U-Net live (loss, samples and FID while it trains)."""

import streamlit as st

st.title("Phase 2 · MNIST 16x16, one digit")
with st.spinner("Loading PyTorch (once per server start)..."):
    from diffusion.config import DataConfig
    from ui import image_cache, image_sections, image_training

st.caption("A small U-Net learns the noise ε on the images of one digit (Ho et al. 2020). FID is measured on the "
           "shipped MNIST classifier's features, with its floor (real images against real images) at the same "
           "number of samples. On a CPU the default training (tiny U-Net, 300 steps) takes under a minute; the "
           "shipped run's grid shows in a second or two, and every costlier section says how long it expects.")

st.header("1. Data and training")
digit = st.selectbox("Digit", range(10), key="digit_digit")
shipped = "digit0" if digit == 0 and image_cache.has_shipped("digit0") else None
if digit != 0:
    st.caption(f"The shipped run is of digit 0; for digit {digit}, train a model.")
if image_training.train_toggle("digit", required=shipped is None):
    data = DataConfig(dataset="mnist", image_size=16, classes=(digit,))
    trained = image_training.training_section("digit", data, conditional=False, name=f"Phase 2 · digit {digit}")
else:
    trained = image_training.trained_model("digit")

st.header("2. The model")
model = image_sections.choose_model("digit", shipped, trained)
if model is not None:
    sampling = image_sections.samples_section("digit", model)
    image_sections.analysis_sections("digit", model, sampling)
