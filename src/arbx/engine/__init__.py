"""The pipeline: a new head in, the pools synced, the strategy run, the executor called."""
