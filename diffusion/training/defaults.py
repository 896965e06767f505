"""Training defaults per model kind, tuned for 2 CPU cores; the CLI and the pages start from them."""

MODEL_DEFAULTS = {
    "mlp": {"batch_size": 256, "lr": 1e-3, "ema_decay": 0.999, "steps": 4000, "threads": 1},
    "unet": {"batch_size": 64, "lr": 5e-4, "ema_decay": 0.999, "steps": 20_000, "threads": 0},
}
UNBOUNDED_STEPS = 10_000_000    # the step target of a run bounded by time only
