"""Triton model repositories: the exporter and the code served models run (docs/serving.md).

``ensemble.export(repo)`` writes a repository (:func:`export_ensemble`); starting a server on
it and querying it is the ``funnel-triton`` distribution (``funnel_triton.TritonServer``).
"""

from funnel.triton.export import export_ensemble

__all__ = ["export_ensemble"]
