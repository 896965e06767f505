"""The 2D page (phase 1): its data, models, plots, animations, settings, custom sets, guidance, flow and files."""
