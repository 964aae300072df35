"""duetfair: fair medical image segmentation — audit subgroup performance, train fair models."""

__version__ = "0.1.0"
