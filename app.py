"""Diffusion Explorer: the Streamlit entry point (pages are listed in ui/views/pages.py)."""

import streamlit as st

from ui.views import layout, pages

st.set_page_config(page_title="Diffusion Explorer", page_icon=":material/blur_on:", layout="wide")
page = st.navigation(pages.navigation_pages())
device_slot = layout.sidebar()
page.run()
layout.finish(device_slot)
