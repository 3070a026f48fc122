"""funnel-tensorflow: serve TensorFlow SavedModels and Keras models in funnel graphs.

Importing this package does not import TensorFlow; that happens when a model is loaded.
"""

from __future__ import annotations

from funnel_tf.predict import PredictTensorflow, configure_tensorflow

__all__ = ["PredictTensorflow", "configure_tensorflow"]
