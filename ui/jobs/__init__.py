"""The server's work: the job queue, visitor liveness, budgets, timing, run roots, training jobs, session and shipped
runs, checkpoint files. Below the views and the page families; imports nothing from them."""
