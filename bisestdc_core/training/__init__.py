"""Training logic: typed configs, optimiser and schedule, the loop, checkpoints, DDP."""
