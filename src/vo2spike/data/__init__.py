"""Data stage: read, validate, clean, resample, window, split and simulate recordings."""
