"""The image pages (phases 2-4): cached results, the shared sections, the on-demand sections, conditioning, training."""
