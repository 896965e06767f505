"""Phase 1: diffusion on 2D toy data. Pick data and see its density, watch the forward process, train live (or use a
shipped run), play the reverse process, read the denoising fields, compare samplers, set diffusion beside flow
matching, measure the likelihood, export. Sections 4 on use this visitor's current model (ui.toy2d.models2d);
its sections are functions in ui.toy2d.sections2d."""

import streamlit as st

st.title("Phase 1 · 2D toy data")
with st.spinner("Loading PyTorch (once per server start)..."):
    # Imported after the title: on a cold server these pull in PyTorch (seconds on a small CPU), and the
    # visitor should see the page start meanwhile.
    from diffusion.explore.toy2d_experiments import METRIC_N
    from ui.toy2d import error_sources, guided2d, sections2d, settings2d

st.caption("Every number below is computed live on this machine's CPU. Distances compare "
           f"{METRIC_N:,} samples with {METRIC_N:,} fresh true points, with a 95% interval; the floor is what a "
           f"perfect model scores ({METRIC_N:,} other true points, the band where 95% of them land).")

settings2d.restore()
dataset = sections2d.data_section()
schedule, T = sections2d.forward_section(dataset)
sections2d.train_section(dataset, schedule, T)
model = sections2d.shipped_block()
sections2d.share_model(model)
sections2d.reverse_section(model)
samples = sections2d.samplers_section(model)
error_sources.section(model)
sections2d.flow_sections(model)
sections2d.export_section(samples)
guided2d.guidance_section()
