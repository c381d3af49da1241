"""The spec language: kinds, loading with source positions, cross-reference checks."""
from specops.spec.kinds import KINDS, Dataset, Document, FeatureSet, Gate, Pipeline, Project, register_kind
from specops.spec.loader import SpecSet, load_specs
from specops.spec import checks as _checks  # noqa: F401  (registers the cross-reference checks)
from specops.spec import monitors as _monitors  # noqa: F401  (registers Monitor and its checks)
from specops.spec import endpoints as _endpoints  # noqa: F401  (registers Endpoint, BatchEndpoint and their checks)
from specops.spec import slos as _slos  # noqa: F401  (registers SLO and its checks)

__all__ = ["KINDS", "Dataset", "Document", "FeatureSet", "Gate", "Pipeline", "Project", "SpecSet", "load_specs", "register_kind"]
