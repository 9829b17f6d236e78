"""Explanations from a fitted HMDR model (method.md, Stage 4), with definitions that hold up.

Lifts are in **probability points** (pp), computed exactly from the fitted model, bounded, and the same
whichever response is called A:

- **Global lift** of concept ``j`` in domain ``d``: the average, over the domain's pairs and both of
  their responses, of the change in the probability that a response is preferred when it gains one
  unit of the concept over the other. For a pair with margin ``z`` and weight ``w = b_j + s_j(d)``
  that is ``(sigmoid(z + w) - sigmoid(z - w)) / 2``: in (-50, +50) pp, even in ``z`` (so swapping A
  and B changes nothing). Its **shared** part is the same quantity with ``w = b_j``; the **specific**
  part is the rest. The paper's slope approximation ``50 * w`` (a relative change in %, unbounded) is
  kept as ``paper_lift`` for comparison with its figures.
- **Local lift** of concept ``j`` on one pair: how much the pair's own difference in the concept moved
  the probability that A is preferred, ``P(A | x) - P(A | x with x_j = 0)``. Swapping A and B negates
  both the value and the lift exactly: the explanation of each response stays the same.
- Concepts whose weight is zero in a domain are not drivers there and are not listed.
- Bootstrap intervals and selection frequencies come from refits at the chosen penalties on pairs
  resampled by query group within each domain (:class:`tools.resampling.ClusterBootstrap`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, Field
from sklearn.utils.validation import check_is_fitted

from tools.hmdr import DomainMasks, HierarchicalMultiDomainRegression, Matrix, as_rows
from tools.resampling import ClusterBootstrap, percentile_interval

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_LIGHT, _DARK = "#9ecae1", "#08519c"  # shared part, domain part
PAPER_SCALE = 50.0  # the paper's global lift at even odds, in % per unit of weight
UNSTABLE_SELECTION = 0.7
"""A driver whose weight is non-zero in fewer bootstrap refits than this is flagged as unstable."""


class ConceptLift(BaseModel):
    """Global lift of one concept in one domain, in probability points."""

    concept: str
    lift: float = Field(description="Mean change (pp) in P(preferred) when a response gains one unit of it.")
    shared: float = Field(description="The part the shared weight alone gives (pp).")
    specific: float = Field(description="The part the domain's own deviation adds (pp).")
    low: float | None = Field(default=None, description="Bootstrap interval on lift (pp).")
    high: float | None = None
    specific_low: float | None = Field(default=None, description="Bootstrap interval on the specific part (pp).")
    specific_high: float | None = None
    selected: float | None = Field(default=None, description="Share of bootstrap refits weighting it here.")
    paper_lift: float = Field(description="The paper's 50 * (b + s(d)), a relative change in % at even odds.")

    @property
    def unstable(self) -> bool:
        """Selected in too few refits, or an interval that reaches the other sign."""
        if self.selected is None or self.low is None or self.high is None:
            return False
        return self.selected < UNSTABLE_SELECTION or self.low * self.high < 0

    @property
    def domain_effect(self) -> bool | None:
        """Whether the domain's own part is established: its interval excludes 0 (None without a bootstrap).

        The fitted model keeps every deviation that lowers the held-out loss, small chance ones included;
        only those the resampled refits agree on are called domain effects."""
        if self.specific_low is None or self.specific_high is None:
            return None
        return self.specific_low > 0 or self.specific_high < 0


class DomainLift(BaseModel):
    """The drivers of one domain (concepts with a non-zero weight there), largest |lift| first."""

    domain: str
    n_pairs: int
    concepts: list[ConceptLift]
    notes: list[str] = Field(default_factory=list)


class GlobalLift(BaseModel):
    """Global lifts per domain, optionally with bootstrap intervals and selection frequencies."""

    domains: list[DomainLift]
    n_bootstrap: int | None = None
    confidence: float | None = None

    def top(self, k: int) -> GlobalLift:
        """Keep the ``k`` drivers with the largest ``|lift|`` in each domain."""
        return self.model_copy(
            update={"domains": [entry.model_copy(update={"concepts": entry.concepts[:k]}) for entry in self.domains]}
        )


def _check_names(model: HierarchicalMultiDomainRegression, concept_names: list[str]) -> None:
    check_is_fitted(model)
    if len(concept_names) != model.n_features_in_:
        raise ValueError(f"got {len(concept_names)} concept names for {model.n_features_in_} concepts")


def unit_effect(margin: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(sigmoid(z + w) - sigmoid(z - w)) / 2`` for every row's margin ``z`` and every weight ``w``.

    Written with tanh (``sigmoid(t) = (1 + tanh(t / 2)) / 2``), which is odd in floating point too, so
    the value is exactly even in ``z``: a pair and its swapped copy give the same number.
    """
    z, w = margin[:, None], weights[None, :]
    return 0.25 * (np.tanh((z + w) / 2.0) - np.tanh((z - w) / 2.0))


def _lift_tables(
    model: HierarchicalMultiDomainRegression, X: Matrix, domains: NDArray[np.str_]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    """Total and shared-only lift (pp), shape (n_domains, n_features); pairs per fitted domain; and
    which concepts differ between the responses of at least one of the domain's pairs."""
    margin = model.margins(X, domains)
    n_domains, n_features = model.coef_domain_.shape
    total, shared = np.zeros((n_domains, n_features)), np.zeros((n_domains, n_features))
    counts = np.zeros(n_domains, dtype=np.int64)
    varies = np.zeros((n_domains, n_features), dtype=bool)
    for d, name in enumerate(model.domains_.tolist()):
        rows = domains == name
        counts[d] = int(rows.sum())
        if counts[d]:
            total[d] = 100.0 * unit_effect(margin[rows], model.coef_shared_ + model.coef_domain_[d]).mean(axis=0)
            shared[d] = 100.0 * unit_effect(margin[rows], model.coef_shared_).mean(axis=0)
            varies[d] = np.asarray((X[rows] != 0).sum(axis=0)).ravel() > 0
    return total, shared, counts, varies


def lift_table(model: HierarchicalMultiDomainRegression, X: Matrix, domains: NDArray[np.str_]) -> NDArray[np.float64]:
    """Global lift (pp) of every concept in every fitted domain, shape (n_domains, n_features)."""
    return _lift_tables(model, as_rows(X), np.asarray(domains))[0]


def _weights(model: HierarchicalMultiDomainRegression) -> NDArray[np.float64]:
    return model.coef_shared_[None, :] + model.coef_domain_


def _table(
    model: HierarchicalMultiDomainRegression,
    X: Matrix,
    domains: NDArray[np.str_],
    concept_names: list[str],
    interval: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
    specific_interval: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
    selected: NDArray[np.float64] | None = None,
    notes: dict[str, list[str]] | None = None,
) -> list[DomainLift]:
    total, shared, counts, varies = _lift_tables(model, X, domains)
    weights = _weights(model)
    result = []
    for d, name in enumerate(str(n) for n in model.domains_.tolist()):
        # A driver has a weight here and differs between the responses of some pair of the domain.
        drivers = [j for j in np.argsort(-np.abs(total[d]), kind="stable") if weights[d, j] != 0 and varies[d, j]]
        concepts = [
            ConceptLift(
                concept=concept_names[j],
                lift=float(total[d, j]),
                shared=float(shared[d, j]),
                specific=float(total[d, j] - shared[d, j]),
                low=None if interval is None else float(interval[0][d, j]),
                high=None if interval is None else float(interval[1][d, j]),
                specific_low=None if specific_interval is None else float(specific_interval[0][d, j]),
                specific_high=None if specific_interval is None else float(specific_interval[1][d, j]),
                selected=None if selected is None else float(selected[d, j]),
                paper_lift=float(PAPER_SCALE * weights[d, j]),
            )
            for j in drivers
        ]
        result.append(
            DomainLift(domain=name, n_pairs=int(counts[d]), concepts=concepts, notes=(notes or {}).get(name, []))
        )
    return result


def global_lift(
    model: HierarchicalMultiDomainRegression,
    X: Matrix | ArrayLike,
    domains: ArrayLike,
    concept_names: list[str],
    notes: dict[str, list[str]] | None = None,
) -> GlobalLift:
    """Return the global lift of every driver in every fitted domain, over the given pairs.

    Parameters
    ----------
    model : HierarchicalMultiDomainRegression
        A fitted model (or baseline).
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        The pairs to average over (typically the training pairs).
    domains : array-like of shape (n_samples,)
        Their domains.
    concept_names : list of str
        One name per column of ``X``.
    notes : dict of str to list of str, default=None
        Notes per domain (e.g. why it has no deviation of its own).

    Returns
    -------
    GlobalLift
        ``lift``, ``shared`` and ``specific`` in pp, ``paper_lift`` in %.
    """
    _check_names(model, concept_names)
    return GlobalLift(domains=_table(model, as_rows(X), np.asarray(domains), concept_names, notes=notes))


def bootstrap_global_lift(
    model: HierarchicalMultiDomainRegression,
    X: Matrix | ArrayLike,
    y: ArrayLike,
    domains: ArrayLike,
    concept_names: list[str],
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
    *,
    groups: ArrayLike | None = None,
    notes: dict[str, list[str]] | None = None,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    random_state: int = 0,
) -> GlobalLift:
    """Global lift of ``model`` with percentile intervals and selection frequencies from refits.

    Query groups are resampled with replacement within each domain; each refit keeps the model's
    parameters (its chosen penalties) and warm-starts from the previous one. Lifts are always
    averaged over the original pairs, so every refit estimates the same quantity. The point estimates
    are those of ``model`` itself.

    Parameters
    ----------
    model : HierarchicalMultiDomainRegression
        A model fitted on ``(X, y, domains)``.
    X, y, domains :
        The training rows (no ties).
    concept_names : list of str
        One name per concept.
    shared_mask, domain_masks :
        As passed to ``fit``.
    groups : array-like of shape (n_samples,), default=None
        Query groups (resampled whole); ``None``: every pair alone.
    notes : dict, default=None
        Notes per domain.
    n_bootstrap : int, default=200
        Number of refits.
    confidence : float, default=0.95
        Coverage of the intervals.
    random_state : int, default=0
        Seed of the resampling.

    Returns
    -------
    GlobalLift
        Lifts with ``low``, ``high`` (and ``specific_low``, ``specific_high`` for the domain's own
        part) and ``selected`` on every driver.
    """
    _check_names(model, concept_names)
    y, domains, X = np.asarray(y), np.asarray(domains), as_rows(X)
    resampler = ClusterBootstrap(domains, groups)
    rng = np.random.default_rng(random_state)
    refit = copy.deepcopy(model).set_params(warm_start=True)
    totals = np.empty((n_bootstrap, *model.coef_domain_.shape))
    specifics = np.empty_like(totals)
    nonzero = np.zeros(model.coef_domain_.shape)
    for k in range(n_bootstrap):
        rows = resampler.rows(rng, both_classes=[y])
        refit.fit(X[rows], y[rows], domains[rows], shared_mask, domain_masks)
        total, shared, _, _ = _lift_tables(refit, X, domains)
        totals[k], specifics[k] = total, total - shared
        nonzero += _weights(refit) != 0
    interval, specific = percentile_interval(totals, confidence), percentile_interval(specifics, confidence)
    table = _table(model, X, domains, concept_names, interval, specific, nonzero / n_bootstrap, notes)
    return GlobalLift(domains=table, n_bootstrap=n_bootstrap, confidence=confidence)


def first_preferred(margin: NDArray[np.float64]) -> NDArray[np.float64]:
    """P(A preferred) from margins, as ``(1 + tanh(z / 2)) / 2``: exactly P(B preferred) of the swapped pair."""
    return 0.5 + 0.5 * np.tanh(margin / 2.0)


def local_lift(
    model: HierarchicalMultiDomainRegression, X: Matrix | ArrayLike, domains: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Return ``100 * (P(A | x) - P(A | x with x_j = 0))`` for every row and concept, in pp.

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
        What each concept's difference did to the probability that A is preferred. Zero where the
        pair shows no difference or the concept has no weight; negated exactly when A and B swap.
    """
    margin = model.decision_function(X, domains)
    weights = model.coef_for(domains, margin.size)
    values = as_rows(X)
    values = values if isinstance(values, np.ndarray) else values.toarray()
    contribution = weights * values
    # sigmoid(z) - sigmoid(z - c) via tanh: exactly odd in (z, c), like the swap.
    return 50.0 * (np.tanh(margin[:, None] / 2.0) - np.tanh((margin[:, None] - contribution) / 2.0))


def plot_global_lift(lift: GlobalLift, path: str | Path, top_k: int = 10, title: str | None = None) -> Path:
    """Draw the top-``k`` drivers of every domain as horizontal bars and save a PNG.

    Each concept gets two bars from zero, side by side so that each sign stays readable: light for the
    part every domain shares, dark for this domain's own part; a black dot marks the lift, with its
    bootstrap interval as a line when there is one.

    Parameters
    ----------
    lift : GlobalLift
        Output of :func:`global_lift` or :func:`bootstrap_global_lift`.
    path : str or Path
        PNG file to write.
    top_k : int, default=10
        Concepts per domain, by largest ``|lift|``.
    title : str, default=None
        Figure title (e.g. mechanism, pairs and accuracy).

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
    n_columns = max(1, min(4, len(shown.domains)))
    n_rows = max(1, -(-len(shown.domains) // n_columns))
    rows_shown = max([len(e.concepts) for e in shown.domains] + [1])
    figure = Figure(figsize=(4.8 * n_columns, (0.42 * rows_shown + 1.1) * n_rows + 1.2))
    FigureCanvasAgg(figure)  # render with Agg: files only, never a display
    axes = figure.subplots(n_rows, n_columns, squeeze=False)
    for axis in axes.flat[len(shown.domains) :]:
        axis.set_visible(False)
    for axis, entry in zip(axes.flat, shown.domains, strict=False):
        _draw_domain(axis, entry)
    handles = [Rectangle((0, 0), 1, 1, color=color) for color in (_LIGHT, _DARK)]
    labels = ["all domains (shared)", "this domain (specific; faint: interval includes 0)"]
    figure.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    if title:
        figure.suptitle(_plain(title), fontsize=11)
    figure.tight_layout(rect=(0, 0.04, 1, 0.97 if title else 1))
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path


def _plain(text: str) -> str:
    """Names as they are: a '$' would otherwise start matplotlib's mathtext."""
    return text.replace("$", r"\$")


def _draw_domain(axis: Axes, entry: DomainLift) -> None:
    concepts = entry.concepts[::-1]  # largest at the top
    position = np.arange(len(concepts))
    axis.barh(position + 0.2, [c.shared for c in concepts], height=0.4, color=_LIGHT)
    # A domain part the bootstrap does not establish (its interval includes 0) is drawn faint.
    alphas = [0.3 if c.domain_effect is False else 1.0 for c in concepts]
    for y, c, alpha in zip(position, concepts, alphas, strict=True):
        axis.barh(y - 0.2, c.specific, height=0.4, color=_DARK, alpha=alpha)
    for y, c in zip(position, concepts, strict=True):
        if c.low is not None and c.high is not None:
            axis.plot([c.low, c.high], [y, y], color="black", linewidth=1.0)
    axis.plot([c.lift for c in concepts], position, "o", color="black", markersize=3)
    axis.axvline(0.0, color="grey", linewidth=0.8)
    axis.set_yticks(position, [_plain(c.concept) for c in concepts], fontsize=8)
    axis.set_title(_plain(f"{entry.domain} ({entry.n_pairs} pairs)"), fontsize=10)
    axis.set_xlabel("lift (probability points)")
    if not concepts:
        axis.text(0.5, 0.5, "no concept carries weight", ha="center", va="center", transform=axis.transAxes)
