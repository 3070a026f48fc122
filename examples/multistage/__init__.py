"""The multi-stage recommender demo on MovieLens-100K (``python -m examples.multistage``).

Reusable pieces: :func:`prepare` (data, models, feature repository, index → :class:`Artifacts`),
the graph builders and the evaluation in :mod:`examples.multistage.pipeline`.
"""

from examples.multistage.prepare import Artifacts, prepare

__all__ = ["Artifacts", "prepare"]
