"""whypref's library: data model, concept store, importers, statistics, regression, explanations.

The Python API a notebook imports is re-exported here and loaded on first use (``from tools import
ConceptStore`` imports the store only; the CLI starts without scikit-learn)::

    from tools import ConceptStore, import_file, annotate, fit_mechanism, explain_global
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_PUBLIC = {
    "ConceptStore": "tools.store",
    "import_file": "tools.importers",
    "Settings": "tools.settings",
    "LLM": "tools.llm",
    "Selection": "tools.operations",
    "annotate": "tools.operations",
    "AnnotationConfig": "tools.annotation",
    "fit_mechanism": "tools.workflows",
    "evaluate_mechanism": "tools.workflows",
    "explain_global": "tools.workflows",
    "explain_pair": "tools.workflows",
    "load_model": "tools.workflows",
    "HierarchicalMultiDomainRegression": "tools.hmdr",
    "build_report": "tools.report",
    "write_report": "tools.report",
    "WhyprefError": "tools.errors",
}
__all__ = [  # the keys of _PUBLIC, spelt out for type checkers and linters
    "AnnotationConfig",
    "ConceptStore",
    "HierarchicalMultiDomainRegression",
    "LLM",
    "Selection",
    "Settings",
    "WhyprefError",
    "annotate",
    "build_report",
    "evaluate_mechanism",
    "explain_global",
    "explain_pair",
    "fit_mechanism",
    "import_file",
    "load_model",
    "write_report",
]

if TYPE_CHECKING:
    from tools.annotation import AnnotationConfig
    from tools.errors import WhyprefError
    from tools.hmdr import HierarchicalMultiDomainRegression
    from tools.importers import import_file
    from tools.llm import LLM
    from tools.operations import Selection, annotate
    from tools.report import build_report, write_report
    from tools.settings import Settings
    from tools.store import ConceptStore
    from tools.workflows import evaluate_mechanism, explain_global, explain_pair, fit_mechanism, load_model


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tools' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
