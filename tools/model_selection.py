"""Model selection and the evaluation protocols (method.md, "Evaluation protocols"), made honest.

- :func:`penalty_grid`: penalties as fractions of the smallest one that zeroes every weight, computed
  from the data (so 50 domains or 50,000 pairs do not make every penalty tiny or huge).
- :func:`grid_search_cv`: k-fold CV **grouped by query** (pairs sharing a query or a response stay on
  one side) and stratified by domain; the configuration with the lowest held-out log loss wins (a
  smooth criterion: accuracy jumps between neighbouring penalties and made the choice, and with it
  the lifts, depend on the fold seed); refit on all training rows.
- :func:`evaluate_in_domain`: nested grouped cross-validation (tuning inside every training fold),
  every pair predicted once per repeat. :func:`evaluate_out_of_domain`: leave one domain out,
  predicted with the shared weights only, nothing of the held-out domain's query groups in training.
- Both score **accuracy over pairs whose reference label is not a tie** (a predicted tie, margin 0,
  counts 0.5), with a stratified cluster-bootstrap interval over the held-out pairs, beside the two
  length baselines on the same splits and the paired difference with each (:data:`LONGER`,
  :data:`LENGTH_LR`). The paper's tie-inclusive figure (reference ties count 0.5) is kept, labelled.

Every function works on arrays and on any model of :data:`tools.baselines.MODELS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from tools.baselines import MODELS, SpecificOnlyRegression
from tools.cancellation import checkpoint
from tools.errors import WhyprefError
from tools.hmdr import DomainMasks, HierarchicalMultiDomainRegression, Matrix, as_rows, domain_penalty_weights
from tools.model_names import LENGTH_BASELINES, LENGTH_LR, LONGER, EvaluationProtocol, ModelVariant
from tools.resampling import ClusterBootstrap
from tools.scores import CVRow, DifferenceRow, Evaluation, ScoreRow


@dataclass(frozen=True)
class CustomModel:
    """Any other model the protocols evaluate on the same splits beside HMDR (e.g. a black box):
    ``margins(data, train, test, seed)`` fits on the ``train`` rows (no ties) and returns the margins
    of the ``test`` rows (positive: A preferred; 0: a tie)."""

    name: str
    margins: Callable[[EvaluationData, NDArray[np.intp], NDArray[np.intp], int], NDArray[np.float64]]


ModelSpec = str | HierarchicalMultiDomainRegression | CustomModel
"""A model name from :data:`tools.baselines.MODELS`, an unfitted model used as a template, or a
:class:`CustomModel`."""


# Penalty grid, as fractions of the smallest penalty that zeroes every weight (lambda_max). Shared
# weights: 6 values over two decades; deviations: none at all (1.0), then half-octave steps where
# they start to appear (a coarser grid made a domain's effect flip on and off with the CV fold seed:
# benchmarks/bench_statistics.py, lift stability). On the stored sets the best log loss lies inside.
SHARED_RATIOS = (1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128)
DOMAIN_RATIOS = (1.0, 2**-1.5, 2**-2, 2**-2.5, 2**-3, 2**-3.5, 2**-4, 2**-5)
MAX_GROUP_SHARE = 0.5
"""Grouped splits need no group larger than this share of the pairs: a fold holding it would leave too
little (or one label) to train on. On the stored sets the largest group holds 1-7% of the pairs."""
CV_TOL = 1e-3
"""Solver tolerance (KKT violation) of the fits that only score a configuration: the chosen one is the
same as at 1e-4 on the stored sets, at half the iterations. The final refit keeps the model's own."""
MIN_DOMAIN_PAIRS = 10
"""A domain with fewer non-tie pairs than this gets no deviation of its own (shared weights only)."""


@dataclass(frozen=True)
class GridSearchResult:
    """Outcome of :func:`grid_search_cv`.

    Attributes
    ----------
    estimator : HierarchicalMultiDomainRegression
        The best configuration refitted on all training rows.
    best_params : dict of str to float
        The chosen configuration.
    table : list of CVRow
        Every configuration's CV scores, in the order they were fitted.
    """

    estimator: HierarchicalMultiDomainRegression
    best_params: dict[str, float]
    table: list[CVRow]


def resolve_model(model: ModelSpec) -> tuple[str, HierarchicalMultiDomainRegression]:
    """Return ``(name, unfitted template)`` for a model name or template."""
    if isinstance(model, str):
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
        return model, MODELS[ModelVariant(model)]()
    if isinstance(model, CustomModel):
        raise ValueError(f"{model.name}: a custom model has no penalties to tune here")
    return type(model).__name__, model


def subset_masks(domain_masks: DomainMasks | None, domains: ArrayLike) -> dict[Any, ArrayLike] | None:
    """Keep the masks of the domains present in ``domains`` (e.g. a training fold)."""
    if domain_masks is None:
        return None
    present = set(np.unique(np.asarray(domains)).tolist())
    return {domain: mask for domain, mask in domain_masks.items() if domain in present}


def strata(*labels: NDArray[Any]) -> NDArray[np.intp]:
    """One integer per distinct combination of the given label arrays (e.g. domain x label)."""
    codes = np.column_stack([np.unique(values, return_inverse=True)[1] for values in labels])
    return np.unique(codes, axis=0, return_inverse=True)[1].ravel()


def row_scores(y: NDArray[Any], margin: NDArray[np.float64]) -> NDArray[np.float64]:
    """1 for a correct side, 0 for a wrong one, 0.5 for a predicted tie (margin 0); NaN where the
    reference label is a tie (``y == 0``: not scored in non-tie accuracy)."""
    scores = np.where(margin == 0, 0.5, (np.sign(margin) == np.sign(y)).astype(np.float64))
    return np.where(y == 0, np.nan, scores)


def _masks_for(
    template: HierarchicalMultiDomainRegression,
    n_features: int,
    domains: NDArray[Any],
    shared_mask: ArrayLike | None,
    domain_masks: DomainMasks | None,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[Any]]:
    """The masks a fit of ``template`` would use: (shared, deviations per domain, domain names)."""
    names = np.unique(domains)
    shared = np.ones(n_features, dtype=bool) if shared_mask is None else np.asarray(shared_mask, dtype=bool)
    deviation = (
        np.ones((names.size, n_features), dtype=bool)
        if domain_masks is None
        else np.stack([np.asarray(domain_masks[d], dtype=bool) for d in names.tolist()])
    )
    shared, deviation = template._masks(shared, deviation)
    return shared, deviation, names


def penalty_scales(
    template: HierarchicalMultiDomainRegression,
    X: Matrix,
    y: NDArray[Any],
    domains: NDArray[Any],
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
) -> tuple[float, float]:
    """``(lambda_shared_max, lambda_domain_max)``: the smallest penalties that zero every shared weight,
    and every deviation, at the all-zero model (the gradient there, per weight and its penalty factor).
    0 when no such weight can be non-zero (no shared concept, or every domain restricted)."""
    shared, deviation, names = _masks_for(template, X.shape[1], domains, shared_mask, domain_masks)
    signs = np.where(y == np.unique(y)[-1], 1.0, -1.0)
    index = np.searchsorted(names, domains)
    n = signs.size
    alpha, _, _ = template._structure(names.size)
    # Gradient of the mean loss at theta = 0: -(1/2N) sum_i y_i x_i, per domain.
    per_domain = np.vstack([np.asarray(X[index == d].T @ signs[index == d]).ravel() for d in range(names.size)])
    shared_gradient = (1.0 + alpha) * np.abs(per_domain.sum(axis=0)) / (2 * n)
    domain_gradient = np.abs(per_domain) / (2 * n) / domain_penalty_weights(np.bincount(index))[:, None]
    return float(shared_gradient[shared].max(initial=0.0)), float(domain_gradient[deviation].max(initial=0.0))


def penalty_grid(
    template: HierarchicalMultiDomainRegression,
    X: Matrix,
    y: NDArray[Any],
    domains: NDArray[Any],
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
) -> list[dict[str, float]]:
    """The configurations to compare for ``template``, from the strongest penalties to the weakest.

    ``lambda_shared`` runs over :data:`SHARED_RATIOS` of its ``lambda_max``; ``lambda_domain`` over
    :data:`DOMAIN_RATIOS` (1.0: no deviation at all, the shared-only model) for models with both, and
    over :data:`SHARED_RATIOS` for the specific-only model. ``alpha`` stays the model's own
    (``1 / |D|``). The order is a snake through the grid, so each fit warm-starts from a neighbour.
    """
    return grid_from_scales(template, *penalty_scales(template, X, y, domains, shared_mask, domain_masks))


def grid_from_scales(
    template: HierarchicalMultiDomainRegression, shared_max: float, domain_max: float
) -> list[dict[str, float]]:
    """:func:`penalty_grid` for given ``lambda_max`` values."""
    names = template.get_params().keys()
    # A scale of 0: no such weight can be non-zero, so one value (any) is enough.
    shared_values: list[float | None] = [None]
    if "lambda_shared" in names:
        shared_values = [shared_max * r for r in SHARED_RATIOS] if shared_max > 0 else [1.0]
    domain_values: list[float | None] = [None]
    if "lambda_domain" in names:
        ratios = DOMAIN_RATIOS if "lambda_shared" in names else SHARED_RATIOS
        domain_values = [domain_max * r for r in ratios] if domain_max > 0 else [1.0]
    grid = []
    for k, domain in enumerate(domain_values):
        row = shared_values if k % 2 == 0 else shared_values[::-1]
        for shared in row:
            point = {"lambda_shared": shared, "lambda_domain": domain}
            grid.append({key: value for key, value in point.items() if value is not None})
    return grid


def grouped_folds(
    strata: NDArray[Any], groups: NDArray[Any], n_splits: int, random_state: int
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Folds that never split a group, with each stratum's pairs spread evenly over them.

    Groups are taken in a seeded random order, largest first, and each goes to the fold where its
    stratum (that of most of its pairs) has the fewest pairs so far (ties: the fold with the fewest
    pairs overall). scikit-learn's ``StratifiedGroupKFold`` does this too, but costs about half a
    second per split on a thousand groups, and splits are made hundreds of times per evaluation.
    """
    group_index = np.unique(groups, return_inverse=True)[1].ravel()
    stratum_index = np.unique(strata, return_inverse=True)[1].ravel()
    n_groups, n_strata = int(group_index.max()) + 1, int(stratum_index.max()) + 1
    sizes = np.bincount(group_index, minlength=n_groups)
    # The stratum of a group: the one most of its pairs are in.
    table = np.zeros((n_groups, n_strata), dtype=np.int64)
    np.add.at(table, (group_index, stratum_index), 1)
    group_stratum = table.argmax(axis=1)
    order = np.random.default_rng(random_state).permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros((n_strata, n_splits), dtype=np.int64)
    total = np.zeros(n_splits, dtype=np.int64)
    fold_of = np.empty(n_groups, dtype=np.intp)
    for group in order.tolist():
        stratum = group_stratum[group]
        fold = int(np.lexsort((total, load[stratum]))[0])
        fold_of[group] = fold
        load[stratum, fold] += sizes[group]
        total[fold] += sizes[group]
    row_fold = fold_of[group_index]
    return [(np.flatnonzero(row_fold != k), np.flatnonzero(row_fold == k)) for k in range(n_splits)]


def cv_folds(
    domains: NDArray[Any],
    y: NDArray[Any],
    groups: NDArray[Any] | None,
    n_splits: int,
    random_state: int,
) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Train/test folds: grouped by ``groups`` (when given) and stratified by domain, or else
    stratified by domain x label. ``n_splits`` is capped by what the data allows (tiny sets)."""
    if groups is None:
        labels = strata(domains, y)
        n_splits = int(min(n_splits, np.bincount(labels).max()))
        if n_splits < 2:
            raise ValueError(f"too few pairs to cross-validate ({domains.size})")
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        with warnings.catch_warnings():
            # Small domains have fewer members than folds: the folds are then as even as they can be.
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            return list(splitter.split(np.zeros((domains.size, 1)), labels))
    sizes = np.unique(groups, return_counts=True)[1]
    n_splits = int(min(n_splits, sizes.size))
    if n_splits < 2:
        raise ValueError(f"too few query groups to cross-validate ({sizes.size})")
    if sizes.max() > MAX_GROUP_SHARE * groups.size:
        # Not a ValueError: callers read those as "too few pairs", and this is about how the pairs are linked.
        raise WhyprefError(
            f"splits grouped by query are impossible here: {sizes.max()} of the {groups.size} pairs form one "
            "group (pairs sharing a query or a response, directly or through a chain of pairs, are kept on one "
            "side). Texts repeated across many pairs link them all; fit and evaluate with --random-splits (it "
            "leaks what repeated texts share, so read its accuracy as optimistic)"
        )
    return grouped_folds(strata(domains), groups, n_splits, random_state)


def _log_loss(y: NDArray[Any], margin: NDArray[np.float64]) -> NDArray[np.float64]:
    signed = np.sign(y) * margin
    return np.maximum(-signed, 0.0) + np.log1p(np.exp(-np.abs(signed)))


@dataclass(frozen=True)
class _CVPath:
    """Every configuration's held-out margins, with each fold's test rows."""

    margins: NDArray[np.float64]  # (n_configurations, n_samples)
    tests: list[NDArray[np.intp]]

    def fold_losses(self, y: NDArray[Any]) -> NDArray[np.float64]:
        """Mean held-out log loss of every configuration in every fold, (n_configurations, n_folds)."""
        signs = np.where(y == np.unique(y)[-1], 1, -1)
        losses = np.stack([_log_loss(signs, m) for m in self.margins])
        return np.stack([losses[:, test].mean(axis=1) for test in self.tests], axis=1)


def _cv_path(
    template: HierarchicalMultiDomainRegression,
    X: Matrix,
    y: NDArray[Any],
    domains: NDArray[Any],
    shared_mask: ArrayLike | None,
    domain_masks: DomainMasks | None,
    grid: list[dict[str, float]],
    folds: list[tuple[NDArray[np.intp], NDArray[np.intp]]],
) -> _CVPath:
    margins = np.zeros((len(grid), y.size))
    scorer = clone(template).set_params(tol=max(template.tol, CV_TOL))
    for train, test in folds:
        checkpoint()  # every fit, evaluation and explanation tunes here: a cancelled one stops here
        masks = subset_masks(domain_masks, domains[train])
        path = scorer.fit_path(X[train], y[train], domains[train], shared_mask, masks, params=grid)
        for k, estimator in enumerate(path):
            margins[k, test] = estimator.margins(X[test], domains[test])
    return _CVPath(margins=margins, tests=[test for _, test in folds])


def shared_penalty_search(
    model: ModelSpec,
    X: Matrix | ArrayLike,
    ys: Sequence[ArrayLike],
    domains: ArrayLike,
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
    *,
    groups: ArrayLike | None = None,
    n_splits: int = 5,
    random_state: int = 0,
) -> tuple[dict[str, float], list[HierarchicalMultiDomainRegression]]:
    """One configuration for several label vectors on the same rows (e.g. humans and a judge), chosen
    by the sum of their CV log losses on the same folds, and each refitted with it.

    Comparing two mechanisms' weights is only meaningful at one penalty: fitted apart, two CVs can
    pick different penalties and the gap between their lifts is then the penalties' doing.
    """
    _, template = resolve_model(model)
    X, domains = as_rows(X), np.asarray(domains)
    labels = [np.asarray(y) for y in ys]
    group_array = None if groups is None else np.asarray(groups)
    scales = np.array([penalty_scales(template, X, y, domains, shared_mask, domain_masks) for y in labels])
    grid = grid_from_scales(template, *scales.max(axis=0))
    folds = cv_folds(domains, labels[0], group_array, n_splits, random_state)
    total = np.zeros((len(grid), len(folds)))
    for y in labels:
        total += _cv_path(template, X, y, domains, shared_mask, domain_masks, grid, folds).fold_losses(y)
    best = grid[int(np.argmin(total.mean(axis=1)))]
    fitted = [clone(template).set_params(**best).fit(X, y, domains, shared_mask, domain_masks) for y in labels]
    return best, fitted


def grid_search_cv(
    model: ModelSpec,
    X: Matrix | ArrayLike,
    y: ArrayLike,
    domains: ArrayLike,
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
    *,
    groups: ArrayLike | None = None,
    param_grid: list[dict[str, float]] | None = None,
    n_splits: int = 5,
    random_state: int = 0,
) -> GridSearchResult:
    """Choose a configuration by k-fold CV and refit on all rows.

    Folds are grouped by ``groups`` (pairs sharing a query or a response) and stratified by domain;
    without ``groups`` they are stratified by domain x label. Within each fold the configurations are
    fitted in grid order, each warm-started from the last. The lowest mean held-out log loss wins;
    ties go to the configuration fitted first (stronger penalties).

    Parameters
    ----------
    model : str or HierarchicalMultiDomainRegression
        Model name from :data:`tools.baselines.MODELS` or an unfitted template.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Concept values.
    y : array-like of shape (n_samples,)
        Binary labels (no ties).
    domains : array-like of shape (n_samples,)
        Domain of every row.
    shared_mask : array-like of bool, shape (n_features,), default=None
        Passed to ``fit``.
    domain_masks : mapping, default=None
        Passed to ``fit`` (restricted to each fold's domains).
    groups : array-like of shape (n_samples,), default=None
        Query group of every row (:func:`tools.grouping.pair_groups`).
    param_grid : list of dict, default=None
        Configurations to compare; ``None`` means :func:`penalty_grid`.
    n_splits : int, default=5
        Number of folds.
    random_state : int, default=0
        Seed of the fold shuffling.

    Returns
    -------
    GridSearchResult
        Refitted best model, its parameters and the CV table.
    """
    _, template = resolve_model(model)
    X, y, domains = as_rows(X), np.asarray(y), np.asarray(domains)
    group_array = None if groups is None else np.asarray(groups)
    grid = param_grid if param_grid is not None else penalty_grid(template, X, y, domains, shared_mask, domain_masks)
    folds = cv_folds(domains, y, group_array, n_splits, random_state)
    path = _cv_path(template, X, y, domains, shared_mask, domain_masks, grid, folds)
    margins = path.margins
    losses = path.fold_losses(y).mean(axis=1)
    signs = np.where(y == np.unique(y)[-1], 1, -1)
    best = int(np.argmin(losses))
    refit = clone(template).set_params(**grid[best]).fit(X, y, domains, shared_mask, domain_masks)
    table = [
        CVRow(params=params, log_loss=float(loss), accuracy=float(np.mean(row_scores(signs, m))))
        for params, loss, m in zip(grid, losses, margins, strict=True)
    ]
    return GridSearchResult(estimator=refit, best_params=grid[best], table=table)


# -- evaluation protocols ------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationData:
    """What a protocol needs: labels (0 = tie), domains, concept values and, for honest splits and the
    length baselines, query groups and response lengths (characters of A and B)."""

    X: Matrix
    y: NDArray[np.int64]
    domains: NDArray[Any]
    shared_mask: NDArray[np.bool_] | None = None
    domain_masks: DomainMasks | None = None
    groups: NDArray[np.intp] | None = None
    lengths: NDArray[np.float64] | None = None

    def length_feature(self) -> NDArray[np.float64]:
        """log((1 + |A|) / (1 + |B|)): one column for the length-only regression."""
        assert self.lengths is not None
        return np.log1p(self.lengths[:, :1]) - np.log1p(self.lengths[:, 1:2])


def _fit_margins(
    name: str,
    template: HierarchicalMultiDomainRegression | CustomModel | None,
    data: EvaluationData,
    train: NDArray[np.intp],
    test: NDArray[np.intp],
    tune: bool,
    random_state: int,
) -> NDArray[np.float64]:
    """Margins on ``test`` of model ``name`` fitted on the non-tie rows of ``train``."""
    if name == LONGER:
        assert data.lengths is not None
        return np.sign(data.lengths[test, 0] - data.lengths[test, 1])
    train = train[data.y[train] != 0]
    if isinstance(template, CustomModel):
        # cast: HMDR derives from untyped scikit-learn classes, so mypy cannot rule it out here
        return cast(CustomModel, template).margins(data, train, test, random_state)
    grid = None
    if name == LENGTH_LR:
        X, shared, masks = data.length_feature(), None, None
        template = HierarchicalMultiDomainRegression()
        # One feature: a light penalty on the shared slope; what is chosen is how much domains may differ.
        shared_max, domain_max = penalty_scales(template, X[train], data.y[train], data.domains[train])
        grid = [
            {"lambda_shared": shared_max * SHARED_RATIOS[-1], "lambda_domain": domain_max * ratio}
            for ratio in DOMAIN_RATIOS
        ]
    else:
        X, shared, masks = as_rows(data.X), data.shared_mask, data.domain_masks
    assert template is not None
    domains = data.domains
    fold_masks = subset_masks(masks, domains[train])
    if tune:
        groups = None if data.groups is None else data.groups[train]
        estimator = grid_search_cv(
            template,
            X[train],
            data.y[train],
            domains[train],
            shared,
            fold_masks,
            groups=groups,
            param_grid=grid,
            random_state=random_state,
        ).estimator
    else:
        estimator = clone(template).fit(X[train], data.y[train], domains[train], shared, fold_masks)
    if isinstance(estimator, SpecificOnlyRegression):
        # No weights for a domain absent from this training fold (a tiny one): a predicted tie.
        known = np.isin(domains[test], estimator.domains_)
        margin = np.zeros(test.size)
        margin[known] = estimator.decision_function(X[test[known]], domains[test[known]])
        return margin
    return estimator.decision_function(X[test], domains[test])


def _evaluation(
    protocol: EvaluationProtocol,
    names: list[str],
    scores: NDArray[np.float64],
    data: EvaluationData,
    *,
    splits: str,
    n_splits: int,
    repeats: int,
    confidence: float,
    n_bootstrap: int,
    random_state: int,
    notes: list[str],
) -> Evaluation:
    """Rows, paired differences and verdicts from per-pair scores (n_pairs, n_models), NaN = not scored."""
    scored = ~np.isnan(scores).any(axis=1) & (data.y != 0)
    if not scored.any():
        raise ValueError("no held-out pair has a non-tie label: nothing to score")
    values = scores[scored]
    bootstrap = ClusterBootstrap(data.domains[scored], None if data.groups is None else data.groups[scored])
    intervals = bootstrap.interval(values, confidence=confidence, n_resamples=n_bootstrap, random_state=random_state)
    ties = data.y == 0
    with_ties = np.where(ties[:, None], 0.5, scores)
    rows = []
    for k, name in enumerate(names):
        per_domain = {
            str(d): 100 * float(values[data.domains[scored] == d, k].mean()) for d in np.unique(data.domains[scored])
        }
        counted = ~np.isnan(with_ties[:, k])
        rows.append(
            ScoreRow(
                model=name,
                non_tie_accuracy=100 * intervals[k].estimate,
                low=100 * intervals[k].low,
                high=100 * intervals[k].high,
                n_pairs=int(scored.sum()),
                accuracy_with_ties=100 * float(with_ties[counted, k].mean()),
                n_ties=int((ties & counted).sum()),
                per_domain=per_domain,
            )
        )
    differences = []
    baselines = [n for n in LENGTH_BASELINES if n in names]
    for k, name in enumerate(names):
        if name in LENGTH_BASELINES:
            continue
        gaps = values[:, [k]] - values[:, [names.index(b) for b in baselines]]
        intervals = bootstrap.interval(gaps, confidence=confidence, n_resamples=n_bootstrap, random_state=random_state)
        for baseline, gap in zip(baselines, intervals, strict=True):
            differences.append(
                DifferenceRow(
                    model=name,
                    baseline=baseline,
                    difference=100 * gap.estimate,
                    low=100 * gap.low,
                    high=100 * gap.high,
                )
            )
        if baselines:
            beats = all(d.low > 0 for d in differences if d.model == name)
            rows[k].explains_more_than_length = "yes" if beats else "not shown"
    return Evaluation(
        protocol=protocol,
        splits=splits,
        n_splits=n_splits,
        repeats=repeats,
        confidence=confidence,
        rows=rows,
        differences=differences,
        notes=notes,
    )


def _models(
    models: Sequence[ModelSpec], data: EvaluationData
) -> list[tuple[str, HierarchicalMultiDomainRegression | CustomModel | None]]:
    resolved: list[tuple[str, HierarchicalMultiDomainRegression | CustomModel | None]] = [
        (m.name, m) if isinstance(m, CustomModel) else (str(m), None) if m in LENGTH_BASELINES else resolve_model(m)
        for m in models
    ]
    if data.lengths is not None:
        resolved += [(b, None) for b in LENGTH_BASELINES if b not in [n for n, _ in resolved]]
    elif any(n in LENGTH_BASELINES for n, _ in resolved):
        raise ValueError("the length baselines need the responses' lengths")
    return resolved


def evaluate_in_domain(
    models: Sequence[ModelSpec],
    data: EvaluationData,
    *,
    tune: bool = True,
    n_splits: int = 5,
    repeats: int = 1,
    confidence: float = 0.95,
    n_bootstrap: int = 2000,
    random_state: int = 0,
) -> Evaluation:
    """In-domain protocol: nested cross-validation, grouped by query when ``data.groups`` is given.

    Each repeat splits the pairs into ``n_splits`` folds (stratified by domain); every model is
    fitted on the non-tie pairs of the other folds (its configuration chosen by an inner grouped CV
    when ``tune``) and predicts the held-out fold. A pair's score is its mean over repeats.

    Parameters
    ----------
    models : sequence of str or HierarchicalMultiDomainRegression
        Models (names of :data:`tools.baselines.MODELS`, templates, or a length baseline). With
        ``data.lengths``, both length baselines are added.
    data : EvaluationData
        Labels (ties = 0), domains, concept values, masks, groups and lengths.
    tune : bool, default=True
        Choose each model's configuration by inner CV; otherwise fit the template's own parameters.
    n_splits : int, default=5
        Outer folds.
    repeats : int, default=1
        Repetitions of the outer split with other seeds.
    confidence : float, default=0.95
        Coverage of the intervals.
    n_bootstrap : int, default=2000
        Bootstrap resamples of the held-out pairs.
    random_state : int, default=0
        Seed of the splits and the bootstrap.

    Returns
    -------
    Evaluation
        One row per model and baseline, paired differences with the baselines, notes.
    """
    resolved = _models(models, data)
    scores = np.zeros((data.y.size, len(resolved)))
    folds_used = n_splits
    for repeat in range(repeats):
        folds = cv_folds(data.domains, data.y, data.groups, n_splits, random_state + repeat)
        folds_used = len(folds)
        for train, test in folds:
            for k, (name, template) in enumerate(resolved):
                margin = _fit_margins(name, template, data, train, test, tune, random_state + repeat)
                scores[test, k] += row_scores(data.y[test], margin)
    scores /= repeats
    grouped = "grouped by query (pairs sharing a query or a response stay together)"
    return _evaluation(
        EvaluationProtocol.IN_DOMAIN,
        [n for n, _ in resolved],
        scores,
        data,
        splits=grouped if data.groups is not None else "random pairs",
        n_splits=folds_used,
        repeats=repeats,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
        notes=[],
    )


def evaluate_out_of_domain(
    models: Sequence[ModelSpec],
    data: EvaluationData,
    *,
    tune: bool = True,
    repeats: int = 1,
    confidence: float = 0.95,
    n_bootstrap: int = 2000,
    random_state: int = 0,
) -> Evaluation:
    """Out-of-domain protocol: leave one domain out, predict it with the shared weights only.

    Each model is trained on the non-tie pairs of all other domains, leaving out any pair whose query
    group reaches into the held-out domain, and scores every pair of the held-out domain. The fit is
    deterministic, so repeats only change the CV folds of tuning.

    Parameters
    ----------
    models : sequence of str or HierarchicalMultiDomainRegression
        As in :func:`evaluate_in_domain` (the specific-only model cannot predict an unseen domain).
    data : EvaluationData
        As in :func:`evaluate_in_domain`.
    tune : bool, default=True
        Choose the configuration by CV on the training domains.
    repeats : int, default=1
        Repetitions per held-out domain, with other CV folds.
    confidence : float, default=0.95
        Coverage of the intervals.
    n_bootstrap : int, default=2000
        Bootstrap resamples of the held-out pairs.
    random_state : int, default=0
        Base seed.

    Returns
    -------
    Evaluation
        As :func:`evaluate_in_domain`; ``per_domain`` holds each domain's accuracy when held out.
    """
    resolved = _models(models, data)
    names = np.unique(data.domains)
    if names.size < 2:
        raise ValueError("the out-of-domain protocol needs at least two domains")
    if any(isinstance(template, SpecificOnlyRegression) for _, template in resolved):
        raise ValueError("SpecificOnlyRegression has no shared weights: it cannot predict out of domain")
    scores = np.full((data.y.size, len(resolved)), np.nan)
    notes = []
    for held_out in names.tolist():
        test = np.flatnonzero(data.domains == held_out)
        if not np.any(data.y[test] != 0):
            continue  # nothing to score: every label of the domain is a tie
        reaching = np.zeros(data.y.size, dtype=bool)
        if data.groups is not None:
            reaching = np.isin(data.groups, data.groups[test])
        train = np.flatnonzero((data.domains != held_out) & ~reaching & (data.y != 0))
        if np.unique(data.y[train]).size < 2:
            notes.append(f"{held_out}: not held out (the other domains have too few labels to train on)")
            continue
        total = np.zeros((test.size, len(resolved)))
        for repeat in range(repeats):
            for k, (name, template) in enumerate(resolved):
                margin = _fit_margins(name, template, data, train, test, tune, random_state + repeat)
                total[:, k] += row_scores(data.y[test], margin)
        scores[test] = total / repeats
    return _evaluation(
        EvaluationProtocol.OOD,
        [n for n, _ in resolved],
        scores,
        data,
        splits="leave one domain out" + (" (its query groups left out of training)" if data.groups is not None else ""),
        n_splits=int(names.size),
        repeats=repeats,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
        notes=notes,
    )
