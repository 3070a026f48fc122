"""funnel-sampling: ordering operators for funnel graphs.

``SoftmaxSampling`` samples an ordering of each request row's candidates without
replacement with probabilities ∝ exp(score · temperature) (Merlin's meaning; ``textbook_temperature`` divides); ``TopK`` orders them by score.
Both are registered under the ``sampling.`` namespace by :mod:`funnel_sampling.plugin`.
"""

from funnel_sampling.ops import OUTPUT_IDS, OUTPUT_LENGTHS, OUTPUT_SCORES, SoftmaxSampling, TopK

__all__ = ["SoftmaxSampling", "TopK", "OUTPUT_IDS", "OUTPUT_SCORES", "OUTPUT_LENGTHS"]
