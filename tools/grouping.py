"""Which pairs must stay on the same side of a train/test split.

Preference sets reuse texts: PandaLM has 170 queries for 999 pairs, and one response is often
compared with several others. A model that has seen a query (or a response) in training has seen
part of the answer, so held-out accuracy is only honest when every pair sharing a normalised query or
a normalised response with a test pair is held out too. :func:`pair_groups` returns those groups:
the connected components of the graph linking pairs through the texts they share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components


def normalise(text: str) -> str:
    """Case and white space do not make two texts different (runs of white space become one space;
    str.split and the regex \\s share Python's one definition of white space)."""
    return " ".join(text.split()).casefold()


def _key(kind: str, text: str) -> bytes | None:
    """A short digest of a normalised text; None for an empty one (empty texts link nothing)."""
    normal = normalise(text)
    return hashlib.blake2b(f"{kind}\0{normal}".encode(), digest_size=12).digest() if normal else None


def pair_groups(texts: Iterable[tuple[str, str, str]]) -> NDArray[np.intp]:
    """Group index of every pair, from its (query, response A, response B) texts.

    Two pairs are in one group when they share a normalised query or a normalised response
    (directly or through a chain of pairs). Empty texts link nothing: sets that embed the dialogue
    in the responses leave the query empty.

    Parameters
    ----------
    texts : iterable of (str, str, str)
        Query, response A and response B of every pair, in row order.

    Returns
    -------
    ndarray of shape (n_pairs,)
        Group labels ``0 .. n_groups - 1``, numbered in order of first appearance.
    """
    keys: dict[bytes, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    n_pairs = 0
    for row, (query, response_a, response_b) in enumerate(texts):
        n_pairs = row + 1
        for kind, text in (("query", query), ("response", response_a), ("response", response_b)):
            key = _key(kind, text)
            if key is not None:
                rows.append(row)
                columns.append(keys.setdefault(key, len(keys)))
    return components(n_pairs, rows, columns, len(keys))


def components(n_items: int, items: Sequence[int], links: Sequence[int], n_links: int) -> NDArray[np.intp]:
    """Connected components of the bipartite graph item -- link, numbered by first item."""
    if n_items == 0:
        return np.zeros(0, dtype=np.intp)
    graph = sp.coo_matrix(
        (np.ones(len(items)), (np.asarray(items, dtype=np.intp), np.asarray(links, dtype=np.intp) + n_items)),
        shape=(n_items + n_links, n_items + n_links),
    )
    labels = connected_components(graph, directed=False)[1][:n_items]
    # Renumber in order of first appearance, so equal inputs give equal groups whatever scipy does.
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.intp)
