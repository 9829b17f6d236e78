"""The paper's ablations of HMDR (method.md, Stage 3) plus a flat L1 logistic regression.

Every baseline is the HMDR solver with part of the structure fixed, so all of them share one
optimiser, one loss scaling (the mean log loss over all training rows) and one interface:
``fit(X, y, domains, shared_mask, domain_masks)``, ``predict(X, domains)`` and so on.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tools.hmdr import HierarchicalMultiDomainRegression
from tools.model_names import ModelVariant


class SharedOnlyRegression(HierarchicalMultiDomainRegression):
    """Shared weights only: HMDR with every deviation ``s(d)`` fixed at zero.

    ``b`` lives on ``shared_mask`` as in HMDR and sees the same loss, ``(1 + 1/|D|) * sum_d L_d(b)``,
    so ``lambda_shared`` means the same as in HMDR's grid. ``domain_masks`` is accepted and ignored.

    Parameters
    ----------
    lambda_shared : float, default=0.01
        L1 penalty on ``b``.
    tol : float, default=1e-4
        KKT tolerance (see :class:`~tools.hmdr.HierarchicalMultiDomainRegression`).
    max_iter : int, default=10000
        Maximum number of iterations.
    warm_start : bool, default=False
        Start from the previous solution.
    """

    def __init__(
        self, lambda_shared: float = 0.01, tol: float = 1e-4, max_iter: int = 10_000, warm_start: bool = False
    ) -> None:
        self.lambda_shared = lambda_shared
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _structure(self, n_domains: int) -> tuple[float, float, float]:
        return 1.0 / n_domains, float(self.lambda_shared), 0.0

    def _masks(
        self, shared_mask: NDArray[np.bool_], deviation_masks: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        return shared_mask, np.zeros_like(deviation_masks)


class FlatRegression(SharedOnlyRegression):
    """Flat L1 logistic regression on every concept, ignoring the domain structure.

    It is :class:`SharedOnlyRegression` with ``shared_mask`` ignored (all concepts allowed). Domains
    only weight the loss as everywhere in this package (each domain's mean counts once), so that its
    ``lambda_shared`` is on the same scale as the others'; with equal-sized domains it is exactly
    scikit-learn's ``LogisticRegression(l1_ratio=1, C=(|D| + 1) / (n_samples * lambda_shared),
    fit_intercept=False)``.

    Parameters
    ----------
    lambda_shared : float, default=0.01
        L1 penalty on the weights.
    tol : float, default=1e-4
        KKT tolerance.
    max_iter : int, default=10000
        Maximum number of iterations.
    warm_start : bool, default=False
        Start from the previous solution.
    """

    def _masks(
        self, shared_mask: NDArray[np.bool_], deviation_masks: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        return np.ones_like(shared_mask), np.zeros_like(deviation_masks)


class DirtyModelRegression(HierarchicalMultiDomainRegression):
    """The "Dirty model": HMDR without the shared-only loss term (``alpha = 0``).

    Parameters
    ----------
    lambda_shared : float, default=0.01
        L1 penalty on ``b``.
    lambda_domain : float, default=0.01
        L1 penalty on every ``s(d)``.
    tol : float, default=1e-4
        KKT tolerance.
    max_iter : int, default=10000
        Maximum number of iterations.
    warm_start : bool, default=False
        Start from the previous solution.
    """

    def __init__(
        self,
        lambda_shared: float = 0.01,
        lambda_domain: float = 0.01,
        tol: float = 1e-4,
        max_iter: int = 10_000,
        warm_start: bool = False,
    ) -> None:
        self.lambda_shared = lambda_shared
        self.lambda_domain = lambda_domain
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _structure(self, n_domains: int) -> tuple[float, float, float]:
        return 0.0, float(self.lambda_shared), float(self.lambda_domain)


class SpecificOnlyRegression(HierarchicalMultiDomainRegression):
    """One L1 logistic regression per domain, nothing shared (``b`` fixed at zero).

    With ``b = 0`` the objective separates into ``L_d(s(d)) + lambda_domain |s(d)|_1`` per domain:
    independent per-domain L1 logistic regressions on each domain's mask. ``shared_mask`` is ignored.

    It has no weights for a domain it was not fitted on, so predicting one **raises** a
    ``ValueError`` rather than returning an uninformative 0.5 that would pass silently as an
    out-of-domain accuracy. ``domains=None`` is accepted only if the model has a single domain.

    Parameters
    ----------
    lambda_domain : float, default=0.01
        L1 penalty on every ``s(d)``.
    tol : float, default=1e-4
        KKT tolerance.
    max_iter : int, default=10000
        Maximum number of iterations.
    warm_start : bool, default=False
        Start from the previous solution.
    """

    def __init__(
        self, lambda_domain: float = 0.01, tol: float = 1e-4, max_iter: int = 10_000, warm_start: bool = False
    ) -> None:
        self.lambda_domain = lambda_domain
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _structure(self, n_domains: int) -> tuple[float, float, float]:
        return 0.0, 0.0, float(self.lambda_domain)

    def _masks(
        self, shared_mask: NDArray[np.bool_], deviation_masks: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        return np.zeros_like(shared_mask), deviation_masks

    def _weight_rows(self, domains: ArrayLike | None, n_samples: int) -> NDArray[np.intp]:
        if domains is None:
            if self.domains_.size == 1:
                return np.zeros(n_samples, dtype=np.intp)
            raise ValueError("SpecificOnlyRegression needs the rows' domains: it has no shared weights")
        index = super()._weight_rows(domains, n_samples)
        unseen = index == self.domains_.size
        if unseen.any():
            names = sorted({str(d) for d in np.asarray(domains)[unseen].tolist()})
            raise ValueError(
                f"SpecificOnlyRegression has no weights for domains {names} (fitted on "
                f"{self.domains_.tolist()}): it cannot predict out of domain"
            )
        return index


MODELS: dict[ModelVariant, type[HierarchicalMultiDomainRegression]] = {
    ModelVariant.HMDR: HierarchicalMultiDomainRegression,
    ModelVariant.SHARED: SharedOnlyRegression,
    ModelVariant.SPECIFIC: SpecificOnlyRegression,
    ModelVariant.DIRTY: DirtyModelRegression,
    ModelVariant.FLAT: FlatRegression,
}
"""Every model by short name, for the evaluation protocols and the command line."""
