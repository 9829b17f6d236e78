"""Model selection and the paper's evaluation protocols (method.md, "Evaluation protocols").

- :func:`paper_grid` / :func:`grid_search_cv`: the 9-configuration grid, 5-fold CV stratified by
  domain x label, warm starts along the grid, refit on all training rows.
- :func:`evaluate_in_domain`: repeated random splits stratified per domain.
- :func:`evaluate_out_of_domain`: leave one domain out, predicted with the shared weights only.
- :func:`tie_accuracy`: accuracy where a tie label scores 0.5 (ties never enter training).
- :func:`bootstrap_ci`: percentile bootstrap confidence intervals.

Every function works on arrays and on any model of :data:`tools.baselines.MODELS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel
from scipy.stats import bootstrap
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

from tools.baselines import MODELS
from tools.hmdr import DomainMasks, HierarchicalMultiDomainRegression, Matrix, as_rows

ModelSpec = str | HierarchicalMultiDomainRegression
"""A model name from :data:`tools.baselines.MODELS` or an unfitted model used as a template."""


class CVRow(BaseModel):
    """Cross-validated accuracy of one configuration."""

    params: dict[str, float]
    fold_accuracy: list[float]
    mean_accuracy: float
    std_accuracy: float


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
        Every configuration's fold accuracies, in the order they were fitted.
    """

    estimator: HierarchicalMultiDomainRegression
    best_params: dict[str, float]
    table: list[CVRow]


class ConfidenceInterval(BaseModel):
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float


class SplitScore(BaseModel):
    """Accuracy of one train/test split of a protocol."""

    split: int
    held_out_domain: str | None
    accuracy: float
    n_train: int
    n_test: int
    params: dict[str, float]


class ProtocolResult(BaseModel):
    """Outcome of an evaluation protocol for one model."""

    protocol: Literal["in_domain", "out_of_domain"]
    model: str
    splits: list[SplitScore]
    accuracy: ConfidenceInterval
    per_domain: dict[str, float]


def paper_grid(n_domains: int) -> list[dict[str, float]]:
    """Return the paper's 9 configurations for ``n_domains`` domains.

    ``alpha = 1/|D|``; ``lambda_domain`` in {1/|D|^2, 2/|D|^2, 1/(2|D|)}; ``lambda_shared`` in
    {1/|D|^2, 2/|D|^2, 1/(2|D|), 1/|D|}; ``lambda_shared >= lambda_domain``. They are ordered from the
    strongest penalties to the weakest, the order in which warm starts pay off.

    Parameters
    ----------
    n_domains : int
        Number of training domains ``|D|``.

    Returns
    -------
    list of dict
        Configurations with keys ``alpha``, ``lambda_shared`` and ``lambda_domain``.
    """
    size = float(n_domains)
    domain_values = [1 / (2 * size), 2 / size**2, 1 / size**2]
    shared_values = [1 / size, 1 / (2 * size), 2 / size**2, 1 / size**2]
    return [
        {"alpha": 1 / size, "lambda_shared": shared, "lambda_domain": domain}
        for domain in domain_values
        for shared in shared_values
        if shared >= domain
    ]


def model_grid(estimator: HierarchicalMultiDomainRegression, n_domains: int) -> list[dict[str, float]]:
    """Return the paper grid restricted to the parameters ``estimator`` has, without duplicates.

    For example the shared-only model keeps the 4 values of ``lambda_shared``.

    Parameters
    ----------
    estimator : HierarchicalMultiDomainRegression
        Any model of :data:`tools.baselines.MODELS`.
    n_domains : int
        Number of training domains.

    Returns
    -------
    list of dict
        Configurations in warm-start order.
    """
    names = estimator.get_params().keys()
    grid: list[dict[str, float]] = []
    for point in paper_grid(n_domains):
        restricted = {key: value for key, value in point.items() if key in names}
        if restricted not in grid:
            grid.append(restricted)
    return grid


def resolve_model(model: ModelSpec) -> tuple[str, HierarchicalMultiDomainRegression]:
    """Return ``(name, unfitted template)`` for a model name or template."""
    if isinstance(model, str):
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose one of {sorted(MODELS)}")
        return model, MODELS[model]()
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


def grid_search_cv(
    model: ModelSpec,
    X: Matrix | ArrayLike,
    y: ArrayLike,
    domains: ArrayLike,
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
    *,
    param_grid: list[dict[str, float]] | None = None,
    n_splits: int = 5,
    random_state: int = 0,
) -> GridSearchResult:
    """Choose a configuration by k-fold CV (stratified by domain x label) and refit on all rows.

    Within each fold the configurations are fitted in grid order, each warm-started from the last.
    The best mean accuracy wins; ties go to the configuration fitted first (stronger penalties).

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
    param_grid : list of dict, default=None
        Configurations to compare; ``None`` means :func:`model_grid` for the model.
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
    grid = param_grid if param_grid is not None else model_grid(template, np.unique(domains).size)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state).split(X, strata(domains, y))
    scores = np.empty((len(grid), n_splits))
    for fold, (train, test) in enumerate(folds):
        estimator = clone(template).set_params(warm_start=True)
        masks = subset_masks(domain_masks, domains[train])
        for k, params in enumerate(grid):
            estimator.set_params(**params).fit(X[train], y[train], domains[train], shared_mask, masks)
            scores[k, fold] = estimator.score(X[test], y[test], domains[test])
    best = int(np.argmax(scores.mean(axis=1)))
    refit = clone(template).set_params(**grid[best]).fit(X, y, domains, shared_mask, domain_masks)
    table = [
        CVRow(params=params, fold_accuracy=row.tolist(), mean_accuracy=row.mean(), std_accuracy=row.std())
        for params, row in zip(grid, scores, strict=True)
    ]
    return GridSearchResult(estimator=refit, best_params=grid[best], table=table)


def tie_accuracy(y_true: ArrayLike, y_pred: ArrayLike, tie_label: Any = 0) -> float:
    """Accuracy where a row labelled ``tie_label`` scores 0.5 whatever the prediction.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, possibly ``tie_label``.
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    tie_label : object, default=0
        The label of a tie (a verdict that flips with the order of the responses).

    Returns
    -------
    float
        Mean score.
    """
    return float(np.mean(_row_scores(np.asarray(y_true), np.asarray(y_pred), tie_label)))


def _row_scores(y_true: NDArray[Any], y_pred: NDArray[Any], tie_label: Any) -> NDArray[np.float64]:
    """1 for a correct prediction, 0 for a wrong one, 0.5 for a tie."""
    return np.where(y_true == tie_label, 0.5, (y_true == y_pred).astype(np.float64))


def _per_domain_mean(domains: NDArray[Any], scores: NDArray[np.float64]) -> dict[str, float]:
    names, index = np.unique(domains, return_inverse=True)
    means = np.bincount(index, weights=scores) / np.bincount(index)
    return {str(name): float(mean) for name, mean in zip(names.tolist(), means, strict=True)}


def bootstrap_ci(
    values: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 9999, random_state: int = 0
) -> ConfidenceInterval:
    """Percentile bootstrap interval of the mean of ``values``.

    Parameters
    ----------
    values : array-like of shape (n,)
        Observations (e.g. one accuracy per split).
    confidence : float, default=0.95
        Coverage of the interval.
    n_resamples : int, default=9999
        Bootstrap resamples.
    random_state : int, default=0
        Seed.

    Returns
    -------
    ConfidenceInterval
        Mean and interval.
    """
    values = np.asarray(values, dtype=np.float64)
    if np.ptp(values) == 0.0:  # scipy reports a degenerate sample as NaN; its interval is the point
        return ConfidenceInterval(estimate=values[0], low=values[0], high=values[0], confidence=confidence)
    result = bootstrap(
        (values,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(random_state),
    )
    interval = result.confidence_interval
    return ConfidenceInterval(estimate=values.mean(), low=interval.low, high=interval.high, confidence=confidence)


def _fit(
    template: HierarchicalMultiDomainRegression,
    tune: bool,
    X: Matrix,
    y: NDArray[Any],
    domains: NDArray[Any],
    shared_mask: ArrayLike | None,
    domain_masks: DomainMasks | None,
    random_state: int,
) -> tuple[HierarchicalMultiDomainRegression, dict[str, float]]:
    """Fit ``template`` (after CV over its grid if ``tune``); return it and its parameters."""
    masks = subset_masks(domain_masks, domains)
    if tune:
        result = grid_search_cv(template, X, y, domains, shared_mask, masks, random_state=random_state)
        return result.estimator, result.best_params
    estimator = clone(template).fit(X, y, domains, shared_mask, masks)
    return estimator, {}


def _result(
    protocol: Literal["in_domain", "out_of_domain"],
    name: str,
    splits: list[SplitScore],
    per_domain: dict[str, float],
    confidence: float,
    random_state: int,
) -> ProtocolResult:
    accuracy = bootstrap_ci([s.accuracy for s in splits], confidence=confidence, random_state=random_state)
    return ProtocolResult(protocol=protocol, model=name, splits=splits, accuracy=accuracy, per_domain=per_domain)


def evaluate_in_domain(
    model: ModelSpec,
    X: Matrix | ArrayLike,
    y: ArrayLike,
    domains: ArrayLike,
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
    *,
    tune: bool = True,
    n_repeats: int = 25,
    test_size: float = 1 / 8,
    tie_label: Any = 0,
    confidence: float = 0.95,
    random_state: int = 0,
) -> ProtocolResult:
    """In-domain protocol: repeated random train/test splits stratified per domain.

    Rows labelled ``tie_label`` are dropped from training and score 0.5 at test.

    Parameters
    ----------
    model : str or HierarchicalMultiDomainRegression
        Model name from :data:`tools.baselines.MODELS` or an unfitted template.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Concept values.
    y : array-like of shape (n_samples,)
        Labels, possibly with ties.
    domains : array-like of shape (n_samples,)
        Domain of every row.
    shared_mask : array-like of bool, default=None
        Passed to ``fit``.
    domain_masks : mapping, default=None
        Passed to ``fit``.
    tune : bool, default=True
        Choose the configuration by :func:`grid_search_cv` on each training set; otherwise fit the
        template's own parameters.
    n_repeats : int, default=25
        Number of random splits.
    test_size : float, default=1/8
        Fraction of every domain held out for testing.
    tie_label : object, default=0
        Label of a tie.
    confidence : float, default=0.95
        Coverage of the bootstrap interval over splits.
    random_state : int, default=0
        Seed of the splits, the CV folds and the bootstrap.

    Returns
    -------
    ProtocolResult
        Accuracy per split, mean with interval, and mean accuracy per domain.
    """
    name, template = resolve_model(model)
    X, y, domains = as_rows(X), np.asarray(y), np.asarray(domains)
    splitter = StratifiedShuffleSplit(n_splits=n_repeats, test_size=test_size, random_state=random_state)
    splits: list[SplitScore] = []
    tested_domains, row_scores = [], []
    for k, (train, test) in enumerate(splitter.split(X, domains)):
        train = train[y[train] != tie_label]
        estimator, params = _fit(
            template, tune, X[train], y[train], domains[train], shared_mask, domain_masks, random_state + k
        )
        scores = _row_scores(y[test], estimator.predict(X[test], domains[test]), tie_label)
        splits.append(
            SplitScore(
                split=k,
                held_out_domain=None,
                accuracy=scores.mean(),
                n_train=train.size,
                n_test=test.size,
                params=params,
            )
        )
        tested_domains.append(domains[test])
        row_scores.append(scores)
    per_domain = _per_domain_mean(np.concatenate(tested_domains), np.concatenate(row_scores))
    return _result("in_domain", name, splits, per_domain, confidence, random_state)


def evaluate_out_of_domain(
    model: ModelSpec,
    X: Matrix | ArrayLike,
    y: ArrayLike,
    domains: ArrayLike,
    shared_mask: ArrayLike | None = None,
    domain_masks: DomainMasks | None = None,
    *,
    tune: bool = True,
    n_seeds: int = 5,
    tie_label: Any = 0,
    confidence: float = 0.95,
    random_state: int = 0,
) -> ProtocolResult:
    """Out-of-domain protocol: leave one domain out, predict it with the shared weights only.

    The model is trained on all other domains (ties dropped) and scores every row of the held-out
    domain, which it has never seen. The fit is deterministic, so seeds only change the CV folds
    of tuning; with ``tune=False`` one seed is run.

    Parameters
    ----------
    model : str or HierarchicalMultiDomainRegression
        Model name from :data:`tools.baselines.MODELS` or an unfitted template.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Concept values.
    y : array-like of shape (n_samples,)
        Labels, possibly with ties.
    domains : array-like of shape (n_samples,)
        Domain of every row.
    shared_mask : array-like of bool, default=None
        Passed to ``fit``.
    domain_masks : mapping, default=None
        Passed to ``fit`` (without the held-out domain).
    tune : bool, default=True
        Choose the configuration by CV on the training domains.
    n_seeds : int, default=5
        Repetitions per held-out domain, with different CV folds.
    tie_label : object, default=0
        Label of a tie.
    confidence : float, default=0.95
        Coverage of the bootstrap interval over (domain, seed) runs.
    random_state : int, default=0
        Base seed.

    Returns
    -------
    ProtocolResult
        Accuracy per (domain, seed), mean with interval, and mean accuracy per held-out domain.
    """
    name, template = resolve_model(model)
    X, y, domains = as_rows(X), np.asarray(y), np.asarray(domains)
    splits: list[SplitScore] = []
    tested_domains, row_scores = [], []
    for held_out in np.unique(domains).tolist():
        test = np.flatnonzero(domains == held_out)
        train = np.flatnonzero((domains != held_out) & (y != tie_label))
        for seed in range(n_seeds if tune else 1):
            estimator, params = _fit(
                template, tune, X[train], y[train], domains[train], shared_mask, domain_masks, random_state + seed
            )
            scores = _row_scores(y[test], estimator.predict(X[test], domains[test]), tie_label)
            splits.append(
                SplitScore(
                    split=len(splits),
                    held_out_domain=str(held_out),
                    accuracy=scores.mean(),
                    n_train=train.size,
                    n_test=test.size,
                    params=params,
                )
            )
            tested_domains.append(domains[test])
            row_scores.append(scores)
    per_domain = _per_domain_mean(np.concatenate(tested_domains), np.concatenate(row_scores))
    return _result("out_of_domain", name, splits, per_domain, confidence, random_state)
