"""The experiment suite: launcher, run specs, plugin registry, tracking, training procedures."""

__version__ = "0.1.0"

import warnings

# Avalanche imports qpsolvers for GEM, which the suite does not use: its "no QP solver" warning is noise.
warnings.filterwarnings("ignore", message="no QP solver found", category=UserWarning)
