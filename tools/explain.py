"""Explanations from a fitted HMDR model (method.md, Stage 4).

- Local lift of concept ``j`` for one pair: ``100 * (p(x + e_j) - p(x)) / p(x)`` percent, where
  ``p`` is the probability that the first response is preferred (``classes_[1]``).
- Global lift of concept ``j`` in domain ``d``: ``50 * (b_j + s_j(d))`` percent, split into a shared
  part ``50 * b_j`` and a domain part ``50 * s_j(d)`` (the slope of the lift at ``p = 0.5``).
- Bootstrap intervals on the global lift (refit on rows resampled within each domain), a per-domain
  bar chart like the paper's, and the same data as JSON.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel
from scipy.special import expit
from sklearn.utils.validation import check_is_fitted

from tools.hmdr import DomainMasks, HierarchicalMultiDomainRegression, Matrix, as_rows

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_LIGHT, _DARK = "#9ecae1", "#08519c"  # shared part, domain part


class ConceptLift(BaseModel):
    """Global lift of one concept in one domain, in percent."""

    concept: str
    shared: float
    domain: float
    total: float
    low: float | None = None  # bootstrap interval on ``total``, when computed
    high: float | None = None


class DomainLift(BaseModel):
    """Global lifts of every concept in one domain."""

    domain: str
    concepts: list[ConceptLift]


class GlobalLift(BaseModel):
    """Global lifts per domain, optionally with bootstrap intervals."""

    domains: list[DomainLift]
    n_bootstrap: int | None = None
    confidence: float | None = None

    def top(self, k: int) -> GlobalLift:
        """Keep the ``k`` concepts with the largest ``|total|`` in each domain, largest first."""
        return self.model_copy(
            update={
                "domains": [
                    DomainLift(
                        domain=entry.domain,
                        concepts=sorted(entry.concepts, key=lambda c: abs(c.total), reverse=True)[:k],
                    )
                    for entry in self.domains
                ]
            }
        )


def _check_names(model: HierarchicalMultiDomainRegression, concept_names: list[str]) -> None:
    check_is_fitted(model)
    if len(concept_names) != model.n_features_in_:
        raise ValueError(f"got {len(concept_names)} concept names for {model.n_features_in_} concepts")


def _lift_table(
    shared: NDArray[np.float64],
    domain: NDArray[np.float64],
    domain_names: list[str],
    concept_names: list[str],
    interval: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> list[DomainLift]:
    """Build per-domain entries from shared (n_features,) and domain (n_domains, n_features) lifts."""
    total = shared + domain
    low, high = interval if interval is not None else (None, None)
    return [
        DomainLift(
            domain=name,
            concepts=[
                ConceptLift(
                    concept=concept,
                    shared=shared[j],
                    domain=domain[d, j],
                    total=total[d, j],
                    low=None if low is None else low[d, j],
                    high=None if high is None else high[d, j],
                )
                for j, concept in enumerate(concept_names)
            ],
        )
        for d, name in enumerate(domain_names)
    ]


def global_lift(model: HierarchicalMultiDomainRegression, concept_names: list[str]) -> GlobalLift:
    """Return the global lift of every concept in every fitted domain.

    Parameters
    ----------
    model : HierarchicalMultiDomainRegression
        A fitted model (or baseline).
    concept_names : list of str
        One name per column of ``X``.

    Returns
    -------
    GlobalLift
        ``shared = 50 b_j``, ``domain = 50 s_j(d)``, ``total`` their sum, in percent.
    """
    _check_names(model, concept_names)
    domains = [str(d) for d in model.domains_.tolist()]
    return GlobalLift(domains=_lift_table(50.0 * model.coef_shared_, 50.0 * model.coef_domain_, domains, concept_names))


def local_lift(
    model: HierarchicalMultiDomainRegression, X: Matrix | ArrayLike, domains: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Return ``100 * (p(x + e_j) - p(x)) / p(x)`` for every row and concept.

    Parameters
    ----------
    model : HierarchicalMultiDomainRegression
        A fitted model.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Concept values.
    domains : array-like of shape (n_samples,), default=None
        Domain of every row (unseen or ``None``: shared weights only).

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        Lift in percent; dense, so keep ``n_samples * n_features`` reasonable.
    """
    margin = model.decision_function(X, domains)
    weights = model.coef_for(domains, margin.size)
    # p(x + e_j) = sigmoid(z + beta_j) because the margin is linear in x.
    return 100.0 * (expit(margin[:, None] + weights) / expit(margin)[:, None] - 1.0)


def _resample_within_domains(domain_index: NDArray[np.intp], rng: np.random.Generator) -> NDArray[np.intp]:
    """Bootstrap row indices that keep every domain's size."""
    return np.concatenate(
        [rng.choice(np.flatnonzero(domain_index == d), size=count) for d, count in enumerate(np.bincount(domain_index))]
    )


def bootstrap_global_lift(
    model: HierarchicalMultiDomainRegression,
    X: Matrix | ArrayLike,
    y: ArrayLike,
    domains: ArrayLike,
    concept_names: list[str],
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
    *,
    n_bootstrap: int = 100,
    confidence: float = 0.95,
    random_state: int = 0,
) -> GlobalLift:
    """Global lift of ``model`` with percentile intervals from refits on resampled rows.

    Rows are resampled with replacement within each domain (sizes kept); each refit uses the
    model's parameters and warm-starts from the previous one. The point estimates are those of
    ``model`` itself.

    Parameters
    ----------
    model : HierarchicalMultiDomainRegression
        A model fitted on ``(X, y, domains)``.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        The training concept values.
    y : array-like of shape (n_samples,)
        The training labels.
    domains : array-like of shape (n_samples,)
        The training domains.
    concept_names : list of str
        One name per concept.
    shared_mask : array-like of bool, default=None
        As passed to ``fit``.
    domain_masks : mapping, default=None
        As passed to ``fit``.
    n_bootstrap : int, default=100
        Number of refits.
    confidence : float, default=0.95
        Coverage of the intervals.
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    GlobalLift
        Lifts with ``low`` and ``high`` on every total.
    """
    _check_names(model, concept_names)
    y, domains = np.asarray(y), np.asarray(domains)
    X = as_rows(X)
    rng = np.random.default_rng(random_state)
    domain_index = np.unique(domains, return_inverse=True)[1]
    refit = copy.deepcopy(model).set_params(warm_start=True)
    totals = np.empty((n_bootstrap, *model.coef_domain_.shape))
    for k in range(n_bootstrap):
        rows = _resample_within_domains(domain_index, rng)
        refit.fit(X[rows], y[rows], domains[rows], shared_mask, domain_masks)
        totals[k] = 50.0 * (refit.coef_shared_ + refit.coef_domain_)
    tail = 50.0 * (1.0 - confidence)
    interval = (np.percentile(totals, tail, axis=0), np.percentile(totals, 100.0 - tail, axis=0))
    domain_names = [str(d) for d in model.domains_.tolist()]
    table = _lift_table(50.0 * model.coef_shared_, 50.0 * model.coef_domain_, domain_names, concept_names, interval)
    return GlobalLift(domains=table, n_bootstrap=n_bootstrap, confidence=confidence)


def plot_global_lift(lift: GlobalLift, path: str | Path, top_k: int = 10) -> Path:
    """Draw the top-``k`` concepts of every domain as horizontal bars and save a PNG.

    Each concept gets two bars from zero, side by side so that each sign stays readable: light for
    the shared part, dark for the domain deviation; a black dot marks the total (with its bootstrap
    interval, when present).

    Parameters
    ----------
    lift : GlobalLift
        Output of :func:`global_lift` or :func:`bootstrap_global_lift`.
    path : str or Path
        PNG file to write.
    top_k : int, default=10
        Concepts per domain, by largest ``|total|``.

    Returns
    -------
    Path
        The written file.
    """
    # Imported here: matplotlib costs half a second, and only charts need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    shown = lift.top(top_k)
    n_columns = min(4, len(shown.domains))
    n_rows = -(-len(shown.domains) // n_columns)
    figure = Figure(figsize=(4.5 * n_columns, 0.45 * top_k * n_rows + 1.0))
    FigureCanvasAgg(figure)  # render with Agg: files only, never a display
    axes = figure.subplots(n_rows, n_columns, squeeze=False)
    for axis in axes.flat[len(shown.domains) :]:
        axis.set_visible(False)
    for axis, entry in zip(axes.flat, shown.domains, strict=False):
        _draw_domain(axis, entry)
    handles = [Rectangle((0, 0), 1, 1, color=color) for color in (_LIGHT, _DARK)]
    figure.legend(handles, ["shared (50 b)", "domain (50 s(d))"], loc="lower center", ncol=2)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path


def _draw_domain(axis: Axes, entry: DomainLift) -> None:
    concepts = entry.concepts[::-1]  # largest at the top
    position = np.arange(len(concepts))
    axis.barh(position + 0.2, [c.shared for c in concepts], height=0.4, color=_LIGHT)
    axis.barh(position - 0.2, [c.domain for c in concepts], height=0.4, color=_DARK)
    totals = np.array([c.total for c in concepts])
    errors = [(c.total - c.low, c.high - c.total) for c in concepts if c.low is not None and c.high is not None]
    if len(errors) == len(concepts):
        axis.errorbar(totals, position, xerr=np.array(errors).T, fmt="o", color="black", markersize=3, capsize=2)
    else:
        axis.plot(totals, position, "o", color="black", markersize=3)
    axis.axvline(0.0, color="grey", linewidth=0.8)
    axis.set_yticks(position, [c.concept for c in concepts], fontsize=8)
    axis.set_title(entry.domain)
    axis.set_xlabel("lift (%)")
