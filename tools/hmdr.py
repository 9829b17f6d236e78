"""Hierarchical Multi-Domain Regression (HMDR): method.md, Stage 3.

Domain ``d`` has weights ``beta(d) = b + s(d)``: ``b`` is shared by every domain, ``s(d)`` is the
domain's deviation. The model is a logistic regression without intercept, fitted by minimising the
convex objective

    (1/N) sum_i [ l(y_i, (b + s(d_i))^T x_i) + alpha * l(y_i, b^T x_i) ]
        + lambda_shared * |b|_1 + lambda_domain * sum_d sqrt(n_d / N) * |s(d)|_1

with an accelerated proximal gradient method (FISTA) whose stopping rule is the optimality
(subgradient) condition. See :class:`HierarchicalMultiDomainRegression` for the choices made.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import Any, Self, TypeAlias

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

Matrix: TypeAlias = NDArray[np.float64] | sp.csr_matrix | sp.csr_array
DomainMasks: TypeAlias = Mapping[Any, ArrayLike]

# The KKT test needs one extra gradient evaluation; doing it every few iterations keeps it cheap.
_CHECK_EVERY = 10
# Relative slack in the sufficient-decrease test, so that rounding near the optimum does not
# inflate the step-size constant forever.
_DECREASE_SLACK = 1e-12


# Rows are processed in chunks of this many, so that temporaries (a weight row per sample, scaled
# rows) stay a few tens of MB whatever the number of pairs.
_CHUNK_ROWS = 1 << 15


def _row_dots(X: Matrix, W: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sum_j X[i, j] * W[i, j]`` for every row ``i``."""
    if isinstance(X, np.ndarray):
        return np.einsum("ij,ij->i", X, W)
    return np.asarray(X.multiply(W).sum(axis=1)).ravel()


@dataclass(frozen=True)
class _Chunk:
    """A run of domain-sorted training rows and where each domain's rows start in it."""

    rows: slice
    X: Matrix
    domain: NDArray[np.intp]  # domain of every row
    segment_domain: NDArray[np.intp]  # domains present, in order
    local_domain: NDArray[np.intp]  # index of each row's domain among the present ones
    segments: list[slice]  # the rows of each present domain

    def margins(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n_rows, 2) margins: column 0 with ``b`` alone, column 1 with ``b + s(d)``."""
        if isinstance(self.X, np.ndarray):
            # Domain by domain, both columns in one pass over the rows (a product per column, or a
            # weight row gathered per sample, would cost two or three).
            weights = np.empty((theta.shape[0] - 1, theta.shape[1], 2))
            weights[:, :, 0] = theta[0]
            weights[:, :, 1] = theta[0] + theta[1:]
            margins = np.empty((self.domain.size, 2))
            for rows, d in zip(self.segments, self.segment_domain.tolist(), strict=True):
                margins[rows] = self.X[rows] @ weights[d]
            return margins
        shared = self.X @ theta[0]
        return np.column_stack((shared, shared + _row_dots(self.X, theta[1:][self.domain])))

    def sums(
        self, shared: NDArray[np.float64], domain: NDArray[np.float64], squared: bool = False
    ) -> NDArray[np.float64]:
        """Row 0: ``sum_i shared_i x_i``; row 1 + k: ``sum_{i in d_k} domain_i x_i`` for the k-th present
        domain (``x_i^2`` instead of ``x_i`` with ``squared``). Shape (1 + n_present, n_features)."""
        values = self.X.multiply(self.X) if squared and not isinstance(self.X, np.ndarray) else self.X
        if isinstance(values, np.ndarray):
            values = values * values if squared else values
            # Domain by domain, both sums in one pass over the rows (a product against a column per
            # domain would cost as many passes as there are domains).
            residuals = np.vstack((shared, domain))
            result = np.zeros((1 + self.segment_domain.size, values.shape[1]))
            for k, rows in enumerate(self.segments):
                both = residuals[:, rows] @ values[rows]
                result[0] += both[0]
                result[1 + k] = both[1]
            return result
        onehot = sp.csr_matrix(
            (domain, (1 + self.local_domain, np.arange(domain.size))), shape=(1 + self.segment_domain.size, domain.size)
        )
        result = np.asarray((onehot @ values).toarray())
        result[0] = np.asarray(values.T @ shared).ravel()
        return result


@dataclass(frozen=True)
class _Data:
    """Training rows sorted by domain, with what every configuration of the objective shares."""

    chunks: list[_Chunk]
    signs: NDArray[np.float64]  # labels as -1/+1, in the sorted order
    positive: NDArray[np.float64]  # 1.0 where the label is +1
    counts: NDArray[np.int64]  # rows per domain
    structure: NDArray[np.bool_]  # which entries of theta may be non-zero (masks, and data to fit them)
    domain_curvature: NDArray[np.float64]  # 0.25 * sum_{i in d} x_ij^2 / N, shape (n_domains, n_features)

    def problem(self, alpha: float, lambda_shared: float, lambda_domain: float) -> _Problem:
        """The objective with these parameters (cheap: the rows are shared)."""
        n_features = self.structure.shape[1]
        metric = np.empty((self.counts.size + 1, n_features))
        metric[1:] = self.domain_curvature
        metric[0] = (1.0 + alpha) * self.domain_curvature.sum(axis=0)
        metric[~self.structure] = 1.0
        penalty = np.empty_like(metric)
        penalty[0] = lambda_shared
        penalty[1:] = lambda_domain * domain_penalty_weights(self.counts)[:, None]
        return _Problem(
            data=self,
            row_weight=1.0 / float(self.counts.sum()),
            term_weight=np.array([alpha, 1.0]),
            allowed=self.structure,
            penalty=penalty,
            metric=metric,
        )


@dataclass(frozen=True)
class _Problem:
    """The HMDR objective on the training rows for one configuration.

    Parameters are held as one array ``theta`` of shape (n_domains + 1, n_features): row 0 is ``b``,
    row ``1 + d`` is ``s(d)``. Every operation is vectorised over rows (in chunks), so its cost does
    not grow with the number of domains.
    """

    data: _Data
    row_weight: float  # 1 / N: the loss is a mean over all rows
    term_weight: NDArray[np.float64]  # [alpha, 1]: the shared-only term and the domain term
    allowed: NDArray[np.bool_]  # structural non-zeros of theta
    penalty: NDArray[np.float64]  # L1 weight of every entry of theta
    metric: NDArray[np.float64]  # diagonal curvature bound, used as the FISTA metric

    def margins(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return (n_samples, 2) margins: column 0 with ``b`` alone, column 1 with ``b + s(d)``."""
        margins = np.empty((self.data.signs.size, 2))
        for chunk in self.data.chunks:
            margins[chunk.rows] = chunk.margins(theta)
        return margins

    def loss(self, margins: NDArray[np.float64]) -> float:
        """Smooth part of the objective."""
        signed = self.data.signs[:, None] * margins
        # log(1 + exp(-t)), stably and faster than logaddexp
        losses = np.maximum(-signed, 0.0) + np.log1p(np.exp(-np.abs(signed)))
        return self.row_weight * float((losses @ self.term_weight).sum())

    def loss_and_gradient(self, margins: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        """:meth:`loss` and its gradient with respect to ``theta``, sharing one exponential."""
        signed = self.data.signs[:, None] * margins
        decay = np.exp(-np.abs(signed))
        losses = np.maximum(-signed, 0.0) + np.log1p(decay)
        loss = self.row_weight * float((losses @ self.term_weight).sum())
        # d/dm log(1 + exp(-y m)) = sigmoid(m) - [y = +1], with sigmoid(m) from exp(-|m|) = decay.
        residual = np.where(margins >= 0, 1.0, decay) / (1.0 + decay)
        residual -= self.data.positive[:, None]
        residual *= self.row_weight * self.term_weight
        grad = np.zeros_like(self.penalty)
        for chunk in self.data.chunks:
            part = residual[chunk.rows]
            sums = chunk.sums(part[:, 0] + part[:, 1], part[:, 1])
            grad[0] += sums[0]
            grad[1 + chunk.segment_domain] += sums[1:]
        return loss, grad * self.allowed

    def gradient(self, margins: NDArray[np.float64]) -> NDArray[np.float64]:
        """Gradient of :meth:`loss` with respect to ``theta``."""
        return self.loss_and_gradient(margins)[1]

    def objective(self, theta: NDArray[np.float64], margins: NDArray[np.float64]) -> float:
        """Full objective: loss plus L1 penalties."""
        return self.loss(margins) + float((self.penalty * np.abs(theta)).sum())

    def kkt_violation(self, theta: NDArray[np.float64], grad: NDArray[np.float64]) -> float:
        """Largest violation of the subgradient optimality condition ``0 in grad + penalty * d|theta|``."""
        violation = np.where(
            theta != 0.0,
            np.abs(grad + self.penalty * np.sign(theta)),
            np.maximum(np.abs(grad) - self.penalty, 0.0),
        )
        return float(violation[self.allowed].max(initial=0.0))

    def prox_step(self, point: NDArray[np.float64], grad: NDArray[np.float64], scale: float) -> NDArray[np.float64]:
        """Proximal gradient step in the metric ``scale * diag(metric)``."""
        step = 1.0 / (scale * self.metric)
        moved = point - step * grad
        shrunk = np.sign(moved) * np.maximum(np.abs(moved) - step * self.penalty, 0.0) + 0.0  # no -0.0
        return np.where(self.allowed, shrunk, 0.0)


def as_rows(X: Matrix | ArrayLike) -> Matrix:
    """Return ``X`` in a format that is cheap to slice by rows: CSR if sparse, else a float ndarray."""
    if isinstance(X, sp.sparray | sp.spmatrix):
        return X.tocsr()
    return np.asarray(X, dtype=np.float64)


def domain_penalty_weights(counts: ArrayLike) -> NDArray[np.float64]:
    """Factor of ``lambda_domain`` for each domain's deviation: ``sqrt(n_d / N)``.

    Domain d's share of the mean loss has a gradient whose sampling noise grows as ``sqrt(n_d) / N``;
    this factor puts every domain's L1 threshold at the same multiple of its own noise, so a small
    domain needs a proportionally clearer signal before it is given a deviation of its own.
    """
    counts = np.asarray(counts, dtype=np.float64)
    return np.sqrt(counts / counts.sum())


def _prepare(
    X: Matrix,
    signs: NDArray[np.float64],
    domain_index: NDArray[np.intp],
    shared_mask: NDArray[np.bool_],
    deviation_masks: NDArray[np.bool_],
) -> _Data:
    """Sort rows by domain, cut them into chunks and precompute the per-domain curvature."""
    n_domains, n_features = deviation_masks.shape
    order = np.argsort(domain_index, kind="stable")
    X, signs, domain_index = X[order], signs[order], domain_index[order]
    counts = np.bincount(domain_index, minlength=n_domains)
    chunks = []
    for start in range(0, X.shape[0], _CHUNK_ROWS):
        rows = slice(start, min(start + _CHUNK_ROWS, X.shape[0]))
        domain = domain_index[rows]
        present, first = np.unique(domain, return_index=True)
        stops = [*first[1:].tolist(), domain.size]
        chunks.append(
            _Chunk(
                rows=rows,
                X=X[rows],
                domain=domain,
                segment_domain=present,
                local_domain=np.searchsorted(present, domain),
                segments=[slice(a, b) for a, b in zip(first.tolist(), stops, strict=True)],
            )
        )
    # 0.25 bounds the logistic curvature.
    curvature = np.zeros((n_domains, n_features))
    for chunk in chunks:
        ones = np.ones(chunk.domain.size)
        curvature[chunk.segment_domain] += 0.25 * chunk.sums(ones, ones, squared=True)[1:]
    curvature /= max(int(counts.sum()), 1)
    curvature *= deviation_masks | shared_mask
    # A concept never non-zero where a weight acts cannot get that weight (and has no curvature).
    structure = np.vstack([shared_mask & (curvature.sum(axis=0) > 0), deviation_masks & (curvature > 0)])
    return _Data(
        chunks=chunks,
        signs=signs,
        positive=(signs > 0).astype(np.float64),
        counts=counts,
        structure=structure,
        domain_curvature=curvature,
    )


@dataclass(frozen=True)
class _Solution:
    theta: NDArray[np.float64]
    n_iter: int
    objective: float
    kkt_violation: float


def _fista(problem: _Problem, theta: NDArray[np.float64], tol: float, max_iter: int) -> _Solution:
    """FISTA with backtracking and gradient-based adaptive restart, stopped on the KKT conditions.

    Margins are linear in ``theta``, so the extrapolated point's margins are extrapolated too and each
    iteration costs one gradient (at the extrapolated point) plus one margin evaluation per trial step.
    """
    theta = np.where(problem.allowed, theta, 0.0)
    x, x_margins = theta, problem.margins(theta)
    y, y_margins, y_is_x = x, x_margins, True
    momentum, scale = 1.0, 1.0
    n_iter = 0
    while True:
        y_grad = None
        if n_iter % _CHECK_EVERY == 0 or n_iter == max_iter:
            x_grad = problem.gradient(x_margins)
            violation = problem.kkt_violation(x, x_grad)
            if violation <= tol or n_iter == max_iter:
                break
            y_grad = x_grad if y_is_x else None
        if y_grad is None:
            y_loss, y_grad = problem.loss_and_gradient(y_margins)
        else:
            y_loss = problem.loss(y_margins)
        while True:  # backtracking on the metric's scale
            x_new = problem.prox_step(y, y_grad, scale)
            new_margins = problem.margins(x_new)
            delta = x_new - y
            # ndarray.sum, not np.sum: the same reduction without the wrapper's cost (a solve makes ~10^5 calls)
            bound = y_loss + (y_grad * delta).sum() + 0.5 * scale * (problem.metric * delta**2).sum()
            if problem.loss(new_margins) <= bound + _DECREASE_SLACK * abs(y_loss):
                break
            scale *= 2.0
        n_iter += 1
        if (problem.metric * (y - x_new) * (x_new - x)).sum() > 0.0:
            # Momentum points uphill: restart it (O'Donoghue and Candes, 2015).
            momentum = 1.0
            y, y_margins, y_is_x = x_new, new_margins, True
        else:
            next_momentum = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * momentum**2))
            beta = (momentum - 1.0) / next_momentum
            y = x_new + beta * (x_new - x)
            y_margins = new_margins + beta * (new_margins - x_margins)
            momentum, y_is_x = next_momentum, beta == 0.0
        x, x_margins = x_new, new_margins
    if violation > tol:
        warnings.warn(
            f"HMDR did not converge in {max_iter} iterations (KKT violation {violation:.2e} > tol {tol:.1e})",
            ConvergenceWarning,
            stacklevel=3,
        )
    return _Solution(x, n_iter, problem.objective(x, x_margins), violation)


def _check_mask(mask: ArrayLike | None, n_features: int, name: str) -> NDArray[np.bool_]:
    if mask is None:
        return np.ones(n_features, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != (n_features,) or mask.dtype != bool:
        raise ValueError(f"{name} must be a boolean array of shape ({n_features},), got {mask.dtype} {mask.shape}")
    return mask


def _check_domain_masks(domain_masks: DomainMasks | None, domains: NDArray[Any], n_features: int) -> NDArray[np.bool_]:
    """Return the masks as an array of shape (n_domains, n_features) in the order of ``domains``."""
    if domain_masks is None:
        return np.ones((domains.size, n_features), dtype=bool)
    unknown = set(domain_masks) - set(domains.tolist())
    missing = set(domains.tolist()) - set(domain_masks)
    if unknown:
        raise ValueError(f"domain_masks has domains that are not in the data: {sorted(map(str, unknown))}")
    if missing:
        raise ValueError(f"domain_masks has no mask for domains: {sorted(map(str, missing))}")
    return np.stack([_check_mask(domain_masks[d], n_features, f"domain_masks[{d!r}]") for d in domains.tolist()])


def _check_domains(domains: ArrayLike | None, n_samples: int) -> NDArray[Any]:
    if domains is None:
        return np.zeros(n_samples, dtype=np.intp)
    domains = np.asarray(domains)
    if domains.shape != (n_samples,):
        raise ValueError(f"domains must have shape ({n_samples},) like the rows of X, got {domains.shape}")
    return domains


@cache
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded (numpy's among them), found once: looking them up costs about 2 ms,
    more than a small fit's solve."""
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[Any]:
    """The solver's products are thin (rows x a few dozen concepts): BLAS threads only contend for them,
    tripling the CPU time of a fit on 50k pairs for no gain in wall time."""
    return _blas().limit(limits=1, user_api="blas")


class HierarchicalMultiDomainRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression with shared weights and sparse per-domain deviations (HMDR).

    For a row ``x`` of domain ``d``, ``p(y = classes_[1] | x, d) = sigmoid((b + s(d))^T x)``; there
    is no intercept. The fitted objective is

    ``(1/N) sum_i [l(y_i, (b + s(d_i))^T x_i) + alpha * l(y_i, b^T x_i)]
    + lambda_shared * |b|_1 + lambda_domain * sum_d sqrt(n_d / N) |s(d)|_1``

    over the ``N`` training rows, ``n_d`` of them in domain ``d``.

    Loss scaling: the paper's sum over rows, divided by ``N``, so every pair counts once whatever the
    size of its domain (a domain of 3 pairs does not weigh on ``b`` like one of 300), and the
    penalties are on the familiar per-sample scale: with one domain, ``b`` alone is scikit-learn's
    ``LogisticRegression(l1_ratio=1, C=(1 + alpha) / (N * lambda_shared), fit_intercept=False)``.

    Deviation penalty: domain ``d``'s share of the loss has a gradient whose sampling noise grows as
    ``sqrt(n_d) / N``, so ``s(d)`` is penalised by ``lambda_domain * sqrt(n_d / N)``
    (:func:`domain_penalty_weights`): every domain's deviation must clear the same multiple of its own
    noise, and small domains deviate only on clear evidence. The penalties themselves are chosen from
    the data (``tools.model_selection.penalty_grid``), not from the number of domains.

    Symmetric augmentation: the paper trains on ``(x, y)`` and ``(-x, -y)``. Without an intercept,
    ``l(-y, w^T(-x)) = l(y, w^T x)``, so the mirrored copy has exactly the loss of its original; with
    mean losses the augmented objective *equals* this one and has the same minimiser. It is therefore
    implicit: nothing is materialised. It still holds for predictions that ``p(x) + p(-x) = 1``.

    Parameters
    ----------
    alpha : float or None, default=None
        Weight of the shared-only loss term that makes ``b`` predict on its own (helps unseen
        domains). ``None`` means ``1 / n_domains``.
    lambda_shared : float, default=0.01
        L1 penalty on ``b``.
    lambda_domain : float, default=0.01
        L1 penalty on every ``s(d)``.
    tol : float, default=1e-4
        Stop when the largest violation of the optimality conditions (``|grad_j + lambda sign(w_j)|``
        for non-zero weights, ``max(|grad_j| - lambda, 0)`` for zero ones) is at most ``tol``.
    max_iter : int, default=10000
        Maximum number of FISTA iterations.
    warm_start : bool, default=False
        Start from the previous solution when refitting on the same domains and features (cheap
        regularisation paths).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Class labels; ``classes_[1]`` is the positive class (``y = +1`` in method.md).
    domains_ : ndarray of shape (n_domains,)
        Domain labels in the order of the rows of ``coef_domain_``. ``[0]`` if fitted without domains.
    coef_shared_ : ndarray of shape (n_features,)
        Shared weights ``b`` (zero off ``shared_mask``).
    coef_domain_ : ndarray of shape (n_domains, n_features)
        Domain deviations ``s(d)`` (zero off each domain's mask).
    n_features_in_ : int
        Number of concepts seen in fit.
    n_iter_ : int
        FISTA iterations of the last fit.
    objective_ : float
        Objective value at the solution.

    Notes
    -----
    Solver: FISTA (Beck and Teboulle, 2009) in the diagonal metric given by each weight's curvature
    bound (a Jacobi preconditioner, so that ``b``, which sees every domain, and each ``s(d)`` take
    suitably sized steps), with backtracking on the metric's scale and gradient-based adaptive
    restart. Rows are grouped by domain once; each domain's block keeps only the columns that can
    carry a weight there.
    """

    def __init__(
        self,
        alpha: float | None = None,
        lambda_shared: float = 0.01,
        lambda_domain: float = 0.01,
        tol: float = 1e-4,
        max_iter: int = 10_000,
        warm_start: bool = False,
    ) -> None:
        self.alpha = alpha
        self.lambda_shared = lambda_shared
        self.lambda_domain = lambda_domain
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # one margin per pair: binary by construction
        tags.input_tags.sparse = True
        return tags

    # Hooks that the baselines (tools/baselines.py) override to fix part of the structure.
    def _structure(self, n_domains: int) -> tuple[float, float, float]:
        """Return ``(alpha, lambda_shared, lambda_domain)`` for a fit on ``n_domains`` domains."""
        alpha = 1.0 / n_domains if self.alpha is None else float(self.alpha)
        return alpha, float(self.lambda_shared), float(self.lambda_domain)

    def _masks(
        self, shared_mask: NDArray[np.bool_], deviation_masks: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Return the masks of ``b`` and of every ``s(d)``."""
        return shared_mask, deviation_masks

    def _check_params(self, alpha: float, lambda_shared: float, lambda_domain: float) -> None:
        for name, value in (("alpha", alpha), ("lambda_shared", lambda_shared), ("lambda_domain", lambda_domain)):
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol}")
        if not (isinstance(self.max_iter, int | np.integer) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter}")

    def fit(
        self,
        X: Matrix | ArrayLike,
        y: ArrayLike,
        domains: ArrayLike | None = None,
        shared_mask: ArrayLike | None = None,
        domain_masks: DomainMasks | None = None,
    ) -> Self:
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Concept values (typically in {-1, 0, +1}).
        y : array-like of shape (n_samples,)
            Binary labels (any two values).
        domains : array-like of shape (n_samples,), default=None
            Domain of every row; ``None`` puts every row in one domain labelled ``0``.
        shared_mask : array-like of bool, shape (n_features,), default=None
            Concepts that may carry a shared weight; ``None`` means all.
        domain_masks : mapping of domain to array-like of bool, shape (n_features,), default=None
            Concepts that may carry a deviation in each domain (shared ones plus the domain's own);
            must have exactly the domains of ``domains``. ``None`` means all concepts everywhere.

        Returns
        -------
        self : HierarchicalMultiDomainRegression
            The fitted model.
        """
        previous = self._previous_theta()
        data, classes, domain_values = self._training_data(X, y, domains, shared_mask, domain_masks)
        start = np.zeros(data.structure.shape)
        if previous is not None and previous[0].shape == start.shape and np.array_equal(previous[1], domain_values):
            start = previous[0]
        with _one_blas_thread():
            return self._solve(data, classes, domain_values, start)

    def fit_path(
        self,
        X: Matrix | ArrayLike,
        y: ArrayLike,
        domains: ArrayLike | None = None,
        shared_mask: ArrayLike | None = None,
        domain_masks: DomainMasks | None = None,
        *,
        params: Sequence[Mapping[str, float]],
    ) -> list[Self]:
        """Fit one copy of this model per configuration, warm-starting each from the previous one.

        The rows are validated and prepared once, so a regularisation path (or a CV grid) costs only
        the solver's iterations. This model itself is left unfitted.

        Parameters
        ----------
        X, y, domains, shared_mask, domain_masks :
            As in :meth:`fit`.
        params : sequence of mapping
            Parameters to set on each copy (e.g. ``lambda_shared``, ``lambda_domain``).

        Returns
        -------
        list of HierarchicalMultiDomainRegression
            The fitted copies, in the order of ``params``.
        """
        template = clone(self)
        data, classes, domain_values = template._training_data(X, y, domains, shared_mask, domain_masks)
        fitted, start = [], np.zeros(data.structure.shape)
        with _one_blas_thread():
            for point in params:
                model = clone(self).set_params(**point)
                model.n_features_in_ = template.n_features_in_
                fitted.append(model._solve(data, classes, domain_values, start))
                start = np.vstack([model.coef_shared_, model.coef_domain_])
        return fitted

    def _training_data(
        self,
        X: Matrix | ArrayLike,
        y: ArrayLike,
        domains: ArrayLike | None,
        shared_mask: ArrayLike | None,
        domain_masks: DomainMasks | None,
    ) -> tuple[_Data, NDArray[Any], NDArray[Any]]:
        """Validate the training rows and prepare them for the solver."""
        X, y = validate_data(self, X, y, accept_sparse=("csr", "csc"), dtype=np.float64)
        check_classification_targets(y)
        classes, label_index = np.unique(y, return_inverse=True)
        if classes.size == 1:
            raise ValueError(f"y has 1 class ({classes[0]}); HMDR needs both labels to fit")
        if (target_type := type_of_target(y, input_name="y")) != "binary":
            # The wording is the one scikit-learn's estimator checks expect of binary-only classifiers.
            raise ValueError(f"Only binary classification is supported. The type of the target is {target_type}.")
        domain_labels = _check_domains(domains, X.shape[0])
        domain_values, domain_index = np.unique(domain_labels, return_inverse=True)
        shared, deviation = self._masks(
            _check_mask(shared_mask, X.shape[1], "shared_mask"),
            _check_domain_masks(domain_masks, domain_values, X.shape[1]),
        )
        data = _prepare(as_rows(X), np.where(label_index == 1, 1.0, -1.0), domain_index, shared, deviation)
        return data, classes, domain_values

    def _solve(
        self, data: _Data, classes: NDArray[Any], domain_values: NDArray[Any], start: NDArray[np.float64]
    ) -> Self:
        """Minimise the objective for this model's parameters from ``start``; set the learned attributes."""
        alpha, lambda_shared, lambda_domain = self._structure(domain_values.size)
        self._check_params(alpha, lambda_shared, lambda_domain)
        solution = _fista(data.problem(alpha, lambda_shared, lambda_domain), start, self.tol, self.max_iter)
        self.classes_ = classes
        self.domains_ = domain_values
        self.coef_shared_ = solution.theta[0].copy()
        self.coef_domain_ = solution.theta[1:].copy()
        self.n_iter_ = solution.n_iter
        self.objective_ = solution.objective
        return self

    def restore(
        self,
        *,
        classes: NDArray[Any],
        domains: NDArray[Any],
        coef_shared: NDArray[np.float64],
        coef_domain: NDArray[np.float64],
        n_iter: int = 0,
    ) -> Self:
        """Set the learned attributes of a model fitted earlier (e.g. read back from a store)."""
        if coef_domain.shape != (domains.size, coef_shared.size):
            raise ValueError(
                f"coef_domain has shape {coef_domain.shape}, expected ({domains.size}, {coef_shared.size})"
            )
        self.classes_ = classes
        self.domains_ = domains
        self.coef_shared_ = coef_shared
        self.coef_domain_ = coef_domain
        self.n_features_in_ = int(coef_shared.size)
        self.n_iter_ = n_iter
        return self

    def _previous_theta(self) -> tuple[NDArray[np.float64], NDArray[Any]] | None:
        """The last solution and its domains, if warm starting from it."""
        if not self.warm_start or not hasattr(self, "coef_shared_"):
            return None
        return np.vstack([self.coef_shared_, self.coef_domain_]), self.domains_

    def _weight_rows(self, domains: ArrayLike | None, n_samples: int) -> NDArray[np.intp]:
        """Index of each row's weight vector: ``k < n_domains`` for ``domains_[k]``, ``n_domains`` for b alone."""
        n_domains = self.domains_.size
        if domains is None:
            return np.full(n_samples, n_domains)
        domains = _check_domains(domains, n_samples)
        known = {d: k for k, d in enumerate(self.domains_.tolist())}
        values, inverse = np.unique(domains, return_inverse=True)
        return np.array([known.get(d, n_domains) for d in values.tolist()], dtype=np.intp)[inverse]

    def coef_for(self, domains: ArrayLike | None, n_samples: int) -> NDArray[np.float64]:
        """Return the weights ``beta(d)`` that predict each row, shape (n_samples, n_features).

        Parameters
        ----------
        domains : array-like of shape (n_samples,) or None
            Domain of every row; unseen domains, and every row when ``None``, get ``b`` alone.
        n_samples : int
            Number of rows (needed when ``domains`` is ``None``).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            ``b + s(d)`` for rows of a fitted domain, ``b`` otherwise.
        """
        check_is_fitted(self)
        return self._weight_table()[self._weight_rows(domains, n_samples)]

    def _weight_table(self) -> NDArray[np.float64]:
        """Rows ``b + s(d)`` for every fitted domain, then ``b`` alone (for unseen domains)."""
        return np.vstack([self.coef_shared_ + self.coef_domain_, self.coef_shared_])

    def decision_function(self, X: Matrix | ArrayLike, domains: ArrayLike | None = None) -> NDArray[np.float64]:
        """Return the margin ``beta(d)^T x`` of every row.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Concept values.
        domains : array-like of shape (n_samples,), default=None
            Domain of every row. Rows of a domain not seen in fit, and all rows when ``None``, use the
            shared weights ``b`` alone.

        Returns
        -------
        ndarray of shape (n_samples,)
            Positive values favour ``classes_[1]``.
        """
        check_is_fitted(self)
        X = as_rows(validate_data(self, X, accept_sparse=("csr", "csc"), dtype=np.float64, reset=False))
        return self.margins(X, domains)

    def margins(self, X: Matrix, domains: ArrayLike | None = None) -> NDArray[np.float64]:
        """:meth:`decision_function` without input validation, for rows already checked (the CV loops)."""
        weights = self._weight_table()
        index = self._weight_rows(domains, X.shape[0])
        margin = np.empty(X.shape[0])
        for k in np.unique(index):
            rows = index == k
            margin[rows] = X[rows] @ weights[k]
        return margin

    def predict_proba(self, X: Matrix | ArrayLike, domains: ArrayLike | None = None) -> NDArray[np.float64]:
        """Return class probabilities, shape (n_samples, 2), columns in the order of ``classes_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Concept values.
        domains : array-like of shape (n_samples,), default=None
            As in :meth:`decision_function`.

        Returns
        -------
        ndarray of shape (n_samples, 2)
            ``[p(classes_[0]), p(classes_[1])]`` per row.
        """
        positive = expit(self.decision_function(X, domains))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Matrix | ArrayLike, domains: ArrayLike | None = None) -> NDArray[Any]:
        """Return the predicted class of every row.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Concept values.
        domains : array-like of shape (n_samples,), default=None
            As in :meth:`decision_function`.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``classes_[1]`` where the margin is positive, else ``classes_[0]``.
        """
        positive = self.decision_function(X, domains) > 0
        return self.classes_[positive.astype(np.intp)]

    def score(self, X: Matrix | ArrayLike, y: ArrayLike, domains: ArrayLike | None = None) -> float:
        """Return the accuracy on ``(X, y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Concept values.
        y : array-like of shape (n_samples,)
            True labels.
        domains : array-like of shape (n_samples,), default=None
            As in :meth:`decision_function`.

        Returns
        -------
        float
            Fraction of rows predicted correctly.
        """
        return float(accuracy_score(y, self.predict(X, domains)))
