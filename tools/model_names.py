"""Names of the models and evaluation protocols, in a module light enough for the CLI to load at start-up."""

from typing import Literal

ModelName = Literal["hmdr", "shared", "specific", "dirty", "flat"]
Protocol = Literal["in-domain", "ood"]

DEFAULT_BOOTSTRAP = 200
"""Refits behind the intervals and selection frequencies ``explain`` shows by default."""

LONGER = "longer"
"""Baseline: the longer response wins (equal lengths: a tie, 0.5)."""
LENGTH_LR = "length-lr"
"""Baseline: logistic regression on the log length ratio alone, with a per-domain slope (HMDR on one
feature, tuned like the model it is compared with)."""
LENGTH_BASELINES = (LONGER, LENGTH_LR)
