"""The Streamlit layer, by page family: toy2d/ (the 2D page) and images/ (the image pages) call views/ (charts,
layout, compare, study, the training panel) and jobs/ (queue, visitors, budgets, timing, training jobs, runs), which
call the diffusion package; nothing imports back up (tests/test_layout.py), and the package never imports streamlit."""
