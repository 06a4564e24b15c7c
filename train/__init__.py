"""Training: datasets, demo-data generator, models, losses, metrics, training loops, `memgaze-train`."""
