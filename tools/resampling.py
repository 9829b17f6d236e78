"""The stratified cluster bootstrap behind every interval whypref prints.

Held-out pairs are resampled, not splits: an interval over split means is about half as wide as the
uncertainty a reader cares about (which pairs happened to be collected). Resampling keeps each
stratum's (domain's) number of clusters, and draws whole clusters (pairs sharing a query or a
response, :mod:`tools.grouping`), because such pairs are not independent evidence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel

# Draws of cluster indices held in memory at once (resamples x clusters).
_MAX_DRAWS = 4_000_000
_MAX_REDRAWS = 100


class ConfidenceInterval(BaseModel):
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class ClusterBootstrap:
    """Resample clusters with replacement within each stratum.

    Parameters
    ----------
    strata : array-like of shape (n_rows,)
        Stratum of every row (e.g. its domain); each stratum keeps its number of clusters.
    clusters : array-like of shape (n_rows,), default=None
        Cluster of every row (e.g. its query group); ``None`` makes every row its own cluster.
    """

    strata: ArrayLike
    clusters: ArrayLike | None = None
    _unit: NDArray[np.intp] = field(init=False, repr=False)
    _unit_stratum: NDArray[np.intp] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        strata = np.unique(np.asarray(self.strata), return_inverse=True)[1].ravel()
        clusters = (
            np.arange(strata.size)
            if self.clusters is None
            else np.unique(np.asarray(self.clusters), return_inverse=True)[1].ravel()
        )
        if clusters.shape != strata.shape:
            raise ValueError(f"clusters has shape {clusters.shape}, strata {strata.shape}")
        # A unit is a cluster within one stratum, so that strata keep their sizes.
        codes, unit = np.unique(np.column_stack([strata, clusters]), axis=0, return_inverse=True)
        object.__setattr__(self, "_unit", unit.ravel().astype(np.intp))
        object.__setattr__(self, "_unit_stratum", codes[:, 0].astype(np.intp))

    @property
    def n_rows(self) -> int:
        return int(self._unit.size)

    def _draws(
        self, rng: np.random.Generator, n_resamples: int
    ) -> Iterator[tuple[slice, NDArray[np.intp], NDArray[np.intp]]]:
        """How often each unit is drawn, a block at a time: (resamples, units, counts of shape
        (resamples, units)). Blocks hold at most about ``_MAX_DRAWS`` counts, so memory stays bounded
        however many pairs and resamples there are."""
        for stratum in np.unique(self._unit_stratum):
            members = np.flatnonzero(self._unit_stratum == stratum)
            step = max(1, _MAX_DRAWS // members.size)
            for start in range(0, n_resamples, step):
                stop = min(start + step, n_resamples)
                draws = rng.integers(0, members.size, size=(stop - start, members.size))
                offsets = np.arange(stop - start)[:, None] * members.size
                tallies = np.bincount((draws + offsets).ravel(), minlength=(stop - start) * members.size)
                yield slice(start, stop), members, tallies.reshape(stop - start, members.size)

    def means(self, values: ArrayLike, *, n_resamples: int = 2000, random_state: int = 0) -> NDArray[np.float64]:
        """Resampled means of every column of ``values``, shape (n_resamples, n_columns)."""
        values = np.asarray(values, dtype=np.float64)
        matrix = values.reshape(values.shape[0], -1)
        if matrix.shape[0] != self.n_rows:
            raise ValueError(f"values has {matrix.shape[0]} rows, the bootstrap {self.n_rows}")
        n_units = self._unit_stratum.size
        # Per unit: the sums of every column, and (last column) its number of rows.
        totals = np.zeros((n_units, matrix.shape[1] + 1))
        np.add.at(totals, self._unit, np.column_stack([matrix, np.ones(matrix.shape[0])]))
        weighted = np.zeros((n_resamples, totals.shape[1]))
        for resamples, members, counts in self._draws(np.random.default_rng(random_state), n_resamples):
            weighted[resamples] += counts @ totals[members]
        return weighted[:, :-1] / weighted[:, -1:]

    def interval(
        self, values: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 2000, random_state: int = 0
    ) -> list[ConfidenceInterval]:
        """Mean of every column of ``values`` with its percentile interval."""
        values = np.asarray(values, dtype=np.float64)
        matrix = values.reshape(values.shape[0], -1)
        resampled = self.means(matrix, n_resamples=n_resamples, random_state=random_state)
        low, high = percentile_interval(resampled, confidence)
        return [
            ConfidenceInterval(estimate=float(m), low=float(lo), high=float(hi), confidence=confidence)
            for m, lo, hi in zip(matrix.mean(axis=0), low, high, strict=True)
        ]

    def rows(self, rng: np.random.Generator, *, both_classes: Sequence[ArrayLike] = ()) -> NDArray[np.intp]:
        """Row indices of one resample (for refitting a model on it).

        ``both_classes``: label arrays each of which the resample must hold both classes of, so a binary
        classifier can be refitted on it; a resample that does not is drawn again (up to 100 times).
        """
        labels = [np.asarray(y) for y in both_classes]
        for _ in range(_MAX_REDRAWS):
            counts = np.zeros(self._unit_stratum.size, dtype=np.intp)
            for _, members, drawn in self._draws(rng, 1):
                counts[members] = drawn[0]
            rows = np.repeat(np.arange(self.n_rows), counts[self._unit])
            if all(np.unique(y[rows]).size > 1 for y in labels):
                return rows
        raise ValueError(f"no resample in {_MAX_REDRAWS} draws holds both labels: too few pairs on one side")


def percentile_interval(samples: ArrayLike, confidence: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Element-wise percentile interval over the first axis of ``samples``."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(samples, dtype=np.float64), [tail, 1.0 - tail], axis=0)
    return low, high


def mean_interval(
    values: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 2000, random_state: int = 0
) -> ConfidenceInterval:
    """Mean of independent observations (e.g. one credit per query) with its percentile interval."""
    values = np.asarray(values, dtype=np.float64)
    return ClusterBootstrap(np.zeros(values.size)).interval(
        values, confidence=confidence, n_resamples=n_resamples, random_state=random_state
    )[0]
