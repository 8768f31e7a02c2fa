"""Errors shared by modules that must not import torch (the integer engine among them)."""


class RunDirError(ValueError):
    """A run directory (model folder) is missing, unfinished or damaged: names the file."""
