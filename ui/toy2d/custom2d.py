"""Bring your own distribution (the 2D page's data section): a visitor's own 2D set from strokes or points drawn on
a canvas, a CSV of points, a silhouette image or a typed word. It is standardised like the presets and becomes a
kernel mixture (data.custom), offered wherever a preset is (ui.toy2d.data2d.add_custom_set): training, floors, metrics,
the exact denoiser, checkpoints. Inputs are bounded before they are read (data.sources); a bad one shows an error box.

The canvas is streamlit-drawable-canvas (Fabric.js), imported where it is drawn: importing it outside `streamlit run`
raises (a components-v2 package).
"""

from collections.abc import Callable

import numpy as np
import streamlit as st

from diffusion.config import MAX_CUSTOM_CLASSES, MAX_CUSTOM_POINTS, MIN_CUSTOM_POINTS
from diffusion.data import sources
from diffusion.data.custom import custom_data, slugify

from ui.toy2d import data2d
from ui.toy2d.canvas_strokes import canvas_strokes
from ui.views.layout import error_box

SOURCES = {"draw": "Draw", "csv": "CSV of points", "image": "Silhouette image", "word": "Word"}
DRAW_MODES = {"freedraw": "strokes", "point": "points (click)"}
CANVAS_SIDE = 360                 # pixels; the drawing is standardised, so only its shape matters
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]
MESSAGE = "toy2d_custom_message"
DATASET_KEY = "toy2d_dataset"     # the data section's selectbox: a new set is selected there
Raw = tuple[np.ndarray, np.ndarray | None, str]      # points (N, 2), labels (N,) or None, a default name
Build = Callable[[], Raw]


def custom_expander() -> None:
    """The expander; call it before the dataset selectbox is drawn (a new set is selected in it)."""
    with st.expander("Bring your own distribution: draw it, or upload points, an image or a word",
                     icon=":material/draw:"):
        _custom_body()


@st.fragment
def _custom_body() -> None:
    """A fragment: drawing and uploading rerun this part only; adding a set reruns the page."""
    st.caption(f"From {MIN_CUSTOM_POINTS} to {MAX_CUSTOM_POINTS:,} points, standardised like the presets (mean 0, "
               "scale 1); each point becomes a small Gaussian (std 5% of the scale), so the set has an exact density "
               "and an exact denoiser. Drawings, images and words give 2,000 points.")
    source = st.radio("From", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="toy2d_custom_source")
    build = {"draw": _drawing, "csv": _csv, "image": _image, "word": _word}[source]()
    name = st.text_input("Name (letters, digits, - and _)", key="toy2d_custom_name", max_chars=32,
                         placeholder="after the file, the word, or 'drawing'")
    if st.button("Use this distribution", key="toy2d_custom_add", icon=":material/add:"):
        _add(build, name)
    if MESSAGE in st.session_state:
        st.success(st.session_state.pop(MESSAGE), icon=":material/check:")


def _add(build: Build, name: str) -> None:
    """Build the set, offer and select it, rerun the page; an error box instead when the input is bad."""
    try:
        points, labels, default = build()
        config = custom_data(slugify(name or default), points, labels)
    except ValueError as e:
        error_box("Could not use this distribution", e)
        return
    data2d.add_custom_set(config)
    st.session_state[DATASET_KEY] = config.dataset
    toy = data2d.describe(config.dataset)
    st.session_state[MESSAGE] = (f"Added {toy}. It is selected under 'Distribution' and trains, measures and exports "
                                 "like a preset.")
    st.rerun()


def _drawing() -> Build:
    from streamlit_drawable_canvas import st_canvas   # here: importing it outside `streamlit run` raises
    mode = st.radio("Draw", list(DRAW_MODES), format_func=DRAW_MODES.get, horizontal=True, key="toy2d_canvas_mode")
    result = st_canvas(stroke_width=3, stroke_color="#1f4e79", fill_color="#1f4e79", background_color="#f7f7f7",
                       height=CANVAS_SIDE, width=CANVAS_SIDE, drawing_mode=mode, point_display_radius=2,
                       key="toy2d_canvas")
    st.caption("Strokes are sampled evenly along their length; clicked points are kept as they are. The toolbar "
               "undoes, redoes and clears.")
    return lambda: (sources.points_from_strokes(canvas_strokes(result.json_data)), None, "drawing")


def _upload(upload, limit: int) -> bytes:
    """An uploaded file's bytes, refused by size before they are read."""
    if upload is None:
        raise ValueError("choose a file first")
    if upload.size > limit:
        raise ValueError(f"{upload.name} has {upload.size:,} bytes; allowed: at most {limit:,}")
    return upload.getvalue()


def _stem(upload) -> str:
    return upload.name.rsplit(".", 1)[0] if upload is not None else "upload"


def _csv() -> Build:
    upload = st.file_uploader("CSV: one point per row, columns x, y and optionally an integer label (a header line "
                              "x,y[,label] is optional)", type=["csv", "txt"], key="toy2d_custom_csv")
    st.caption(f"At most {sources.MAX_CSV_BYTES:,} bytes and {MAX_CUSTOM_POINTS:,} rows; labels (at most "
               f"{MAX_CUSTOM_CLASSES} classes) make the set usable for guidance below.")
    return lambda: (*sources.points_from_csv(_upload(upload, sources.MAX_CSV_BYTES)), _stem(upload))


def _image() -> Build:
    upload = st.file_uploader("A silhouette: a dark shape on a light background, or the reverse, or a transparent "
                              "background", type=IMAGE_TYPES, key="toy2d_custom_image")
    st.caption(f"At most {sources.MAX_IMAGE_BYTES:,} bytes and {sources.MAX_IMAGE_PIXELS:,} pixels; 2,000 points "
               "are drawn uniformly on the shape.")
    return lambda: (sources.points_from_image(_upload(upload, sources.MAX_IMAGE_BYTES)), None, _stem(upload))


def _word() -> Build:
    word = st.text_input("Word", key="toy2d_custom_word", max_chars=sources.MAX_WORD_CHARS, placeholder="diffusion")
    return lambda: (sources.points_from_word(word), None, word)
