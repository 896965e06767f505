"""Phase 2: MNIST 16x16, one digit. Load the shipped run or train a U-Net live (loss, samples and FID while it
trains), then look at samples, the denoising filmstrip, memorisation, diversity and interpolation."""

import streamlit as st

st.title("Phase 2 · MNIST 16x16, one digit")
with st.spinner("Loading PyTorch (once per server start)..."):
    from diffusion.config import DataConfig
    from ui import image_sections, image_training

st.caption("A small U-Net learns the noise ε on the images of one digit (Ho et al. 2020). FID is measured on the "
           "shipped MNIST classifier's features, with its floor (real images against real images) at the same "
           "number of samples. On a CPU the default training (tiny U-Net, 300 steps) takes under a minute.")

st.header("1. Data and training")
digit = st.selectbox("Digit", range(10), key="digit_digit")
data = DataConfig(dataset="mnist", image_size=16, classes=(digit,))
trained = image_training.training_section("digit", data, conditional=False, name=f"Phase 2 · digit {digit}")

st.header("2. The model")
shipped = "digit0" if digit == 0 else None
if shipped is None:
    st.caption(f"The shipped run is of digit 0; for digit {digit}, train a model above.")
model = image_sections.choose_model("digit", shipped, trained)
image_sections.analysis_sections("digit", model)
