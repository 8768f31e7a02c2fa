"""vo2spike: VO2 / VO2max estimation from wearable signals with a TCN + LIF spiking network."""

__version__ = "0.2.0"
