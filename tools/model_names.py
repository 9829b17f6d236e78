"""Names of the models and evaluation protocols, in a module light enough for the CLI to load at start-up."""

from typing import Literal

ModelName = Literal["hmdr", "shared", "specific", "dirty", "flat"]
Protocol = Literal["in-domain", "ood"]

DEFAULT_BOOTSTRAP = 200
"""Refits behind the intervals and selection frequencies ``explain`` shows by default."""
