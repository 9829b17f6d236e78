"""Names of the models and evaluation protocols, in a module light enough for the CLI to load at start-up."""

from enum import StrEnum


class ModelVariant(StrEnum):
    """The regression fitted: HMDR, or one of the paper's baselines."""

    HMDR = "hmdr"  # shared weights plus per-domain deviations, L1-sparse
    SHARED = "shared"  # one weight per concept for every domain
    SPECIFIC = "specific"  # per-domain weights only (no shared ones)
    DIRTY = "dirty"  # the "Dirty model": HMDR without the shared-only loss term
    FLAT = "flat"  # L1 logistic regression on every concept, domain structure ignored


class EvaluationProtocol(StrEnum):
    """How held-out accuracy is measured."""

    IN_DOMAIN = "in-domain"  # nested cross-validation, folds grouped by query
    OOD = "ood"  # leave one domain out


DEFAULT_BOOTSTRAP = 200
"""Refits behind the intervals and selection frequencies ``explain`` shows by default."""

LONGER = "longer"
"""Baseline: the longer response wins (equal lengths: a tie, 0.5)."""
LENGTH_LR = "length-lr"
"""Baseline: logistic regression on the log length ratio alone, with a per-domain slope (HMDR on one
feature, tuned like the model it is compared with)."""
LENGTH_BASELINES = (LONGER, LENGTH_LR)
