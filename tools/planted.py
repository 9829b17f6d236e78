"""Synthetic concept vectors with planted shared and domain-specific weights.

The generator mirrors the structure of Comp-rep data (method.md, Stage 2): every pair of domain ``d``
has values in {-1, 0, +1} on the shared concepts and on ``d``'s own concepts, and 0 on the concepts
specific to other domains. Labels are drawn from the HMDR model itself,
``p(y=+1 | x, d) = sigmoid((b + s(d))^T x)``, optionally with random label flips, so the true
weights, supports and Bayes probabilities are known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit


@dataclass(frozen=True)
class PlantedData:
    """A planted data set and the model that generated it.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_concepts)
        Concept values in {-1, 0, +1}.
    y : ndarray of shape (n_samples,)
        Labels in {-1, +1}.
    domains : ndarray of shape (n_samples,)
        Domain name of every row.
    coef_shared : ndarray of shape (n_concepts,)
        True shared weights ``b`` (zero off the shared concepts).
    coef_domain : ndarray of shape (n_domains, n_concepts)
        True deviations ``s(d)``, rows in the order of ``domain_names``.
    shared_mask : ndarray of shape (n_concepts,)
        True for shared concepts.
    domain_masks : dict of str to ndarray of shape (n_concepts,)
        Concepts allowed in ``s(d)``: the shared ones plus the domain's own.
    concept_names : list of str
        Names of the concepts (shared ones first).
    domain_names : list of str
        Names of the domains.
    proba : ndarray of shape (n_samples,)
        The generating model's ``P(y=+1 | x, d)``, label flips included (Bayes probabilities).
    """

    X: NDArray[np.float64]
    y: NDArray[np.int64]
    domains: NDArray[np.str_]
    coef_shared: NDArray[np.float64]
    coef_domain: NDArray[np.float64]
    shared_mask: NDArray[np.bool_]
    domain_masks: dict[str, NDArray[np.bool_]]
    concept_names: list[str]
    domain_names: list[str]
    proba: NDArray[np.float64]


def _random_weights(
    rng: np.random.Generator, n: int, active_fraction: float, low: float, high: float
) -> NDArray[np.float64]:
    """Return ``n`` weights of which ``round(active_fraction * n)`` are non-zero, random sign and size."""
    weights = np.zeros(n)
    active = rng.choice(n, size=round(active_fraction * n), replace=False)
    weights[active] = rng.choice([-1.0, 1.0], size=active.size) * rng.uniform(low, high, size=active.size)
    return weights


def make_planted(
    n_domains: int = 8,
    n_concepts: int = 60,
    n_shared: int = 10,
    n_pairs_per_domain: int = 400,
    *,
    shared_active: float = 0.6,
    specific_active: float = 0.5,
    deviation_active: float = 0.1,
    weight_range: tuple[float, float] = (0.5, 1.5),
    density: float = 0.4,
    label_noise: float = 0.0,
    random_state: int = 0,
) -> PlantedData:
    """Generate concept vectors and labels from known shared and domain-specific weights.

    Parameters
    ----------
    n_domains : int, default=8
        Number of domains.
    n_concepts : int, default=60
        Total number of concepts; the non-shared ones are split as evenly as possible among domains.
    n_shared : int, default=10
        Number of shared concepts (the first ``n_shared`` columns).
    n_pairs_per_domain : int, default=400
        Rows generated per domain.
    shared_active : float, default=0.6
        Fraction of shared concepts with a non-zero shared weight ``b_j``.
    specific_active : float, default=0.5
        Fraction of each domain's own concepts with a non-zero ``s_j(d)``.
    deviation_active : float, default=0.1
        Fraction of shared concepts on which each domain deviates (non-zero ``s_j(d)``).
    weight_range : tuple of float, default=(0.5, 1.5)
        Non-zero weights are ``+-U(low, high)``.
    density : float, default=0.4
        Probability that a relevant concept is non-zero in a pair (then +1 or -1 with equal odds).
    label_noise : float, default=0.0
        Probability that a label drawn from the logistic model is flipped.
    random_state : int, default=0
        Seed; the same arguments always give the same data.

    Returns
    -------
    PlantedData
        Data, true weights, masks, names and Bayes probabilities.
    """
    if not 0 < n_shared < n_concepts or n_concepts - n_shared < n_domains:
        raise ValueError(
            f"need 0 < n_shared < n_concepts and at least one specific concept per domain; got "
            f"n_concepts={n_concepts}, n_shared={n_shared}, n_domains={n_domains}"
        )
    if not 0.0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise}")
    rng = np.random.default_rng(random_state)
    low, high = weight_range
    domain_names = [f"domain{d}" for d in range(n_domains)]
    concept_names = [f"shared{j}" for j in range(n_shared)]
    specific = np.array_split(np.arange(n_shared, n_concepts), n_domains)
    for d, columns in enumerate(specific):
        concept_names += [f"d{d}_concept{k}" for k in range(columns.size)]

    shared_mask = np.zeros(n_concepts, dtype=bool)
    shared_mask[:n_shared] = True
    domain_masks = {}
    coef_shared = np.zeros(n_concepts)
    coef_shared[:n_shared] = _random_weights(rng, n_shared, shared_active, low, high)
    coef_domain = np.zeros((n_domains, n_concepts))
    for d, columns in enumerate(specific):
        domain_masks[domain_names[d]] = shared_mask.copy()
        domain_masks[domain_names[d]][columns] = True
        coef_domain[d, :n_shared] = _random_weights(rng, n_shared, deviation_active, low, high)
        coef_domain[d, columns] = _random_weights(rng, columns.size, specific_active, low, high)

    domain_index = np.repeat(np.arange(n_domains), n_pairs_per_domain)
    relevant = np.stack([domain_masks[name] for name in domain_names])[domain_index]
    nonzero = relevant & (rng.random(relevant.shape) < density)
    X = np.where(nonzero, rng.choice([-1.0, 1.0], size=relevant.shape), 0.0)
    margin = np.einsum("ij,ij->i", X, coef_shared + coef_domain[domain_index])
    proba = (1 - label_noise) * expit(margin) + label_noise * expit(-margin)
    y = np.where(rng.random(proba.size) < proba, 1, -1)
    return PlantedData(
        X=X,
        y=y,
        domains=np.asarray(domain_names)[domain_index],
        coef_shared=coef_shared,
        coef_domain=coef_domain,
        shared_mask=shared_mask,
        domain_masks=domain_masks,
        concept_names=concept_names,
        domain_names=domain_names,
        proba=proba,
    )
