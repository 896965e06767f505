"""Phase 4: 32x32, grayscale or RGB. The same tools as phases 2 and 3 on MNIST at 32x32, the offline RGB shapes,
CIFAR-10 (online only) or an image folder, and what the higher resolution costs next to 16x16; the analytic denoisers
of each class beside the network."""

import streamlit as st

st.title("Phase 4 · 32x32 and RGB")
with st.spinner("Loading PyTorch (once per server start)..."):
    from diffusion.config import DataConfig
    from ui.images import image_analytic, image_ondemand, image_sections, image_training
    from ui.jobs import shipped_runs
    from ui.views.layout import error_box

DATASETS = {"shapes": "shapes: 10 classes of coloured shapes, RGB, generated offline",
            "mnist": "MNIST digits at 32x32, grayscale", "cifar10": "CIFAR-10 (needs the network once)",
            "folder": "an image folder on this machine (ImageFolder: one subfolder per class)"}
SHIPPED = {shipped_runs.SHIPPED[name].dataset: name for name in shipped_runs.on_page("images32")}  # dataset -> run

st.caption("Four times the pixels of 16x16: every convolution costs about four times more, attention at a given "
           "level sixteen times. Training says how long its settings take on this machine before you start; every "
           "costlier section runs when asked and says how long it expects.")

st.header("1. Data")
choice = st.selectbox("Dataset", list(DATASETS), format_func=DATASETS.get, key="img32_dataset")
dataset = choice
if choice == "folder":
    dataset = image_training.folder_dataset(st.text_input("Folder (its subfolders are the classes)",
                                                          key="img32_folder", help=image_training.FOLDER_HELP))
if not dataset:
    st.stop()
shipped = SHIPPED.get(choice) if choice in SHIPPED and shipped_runs.has_shipped(SHIPPED[choice]) else None

st.header("2. The cost of 32x32 next to 16x16")
st.caption("A few training steps of each model, batch 64, conditional. Memory: weights, gradients, AdamW's two "
           "moments and the EMA copy (5 float32 copies), plus the tensors autograd keeps for the backward pass of "
           "one batch.")
configs = image_training.cost_configs()
promise = image_training.cost_table_promise(configs)
if image_ondemand.opened("img32_cost", "cost", None, "Measure", promise):
    try:
        st.dataframe(image_training.cost_table(configs, promise), hide_index=True, height="content")
    except ValueError as e:
        error_box("Could not measure", e)

st.header("3. Train")
trained = image_training.train_or_trained("img32", shipped is None, DataConfig(dataset=dataset, image_size=32),
                                          conditional=True, name=f"Phase 4 · {dataset} 32x32")

st.header("4. The model")
shown = image_sections.model_sections("img32", shipped, trained)
if shown is not None:
    image_analytic.analytic_section("img32", *shown)
