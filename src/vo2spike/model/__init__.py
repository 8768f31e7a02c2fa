"""Model stage: surrogate spike + LIF layer, causal TCN, and the VO2 network."""

from vo2spike.model.net import ModelConfig, VO2Net
from vo2spike.model.spike import LIF, TriangularSpike

__all__ = ["LIF", "ModelConfig", "TriangularSpike", "VO2Net"]
