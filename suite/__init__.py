"""The experiment suite: launcher, run specs, plugin registry, tracking, training procedures."""

__version__ = "0.1.0"
