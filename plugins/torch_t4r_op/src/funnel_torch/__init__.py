"""funnel-torch: serve PyTorch models (TorchScript, torch.export, nn.Module) in funnel graphs.

Importing this package does not import torch; that happens when a model is loaded.
``funnel_torch.session`` (extra ``funnel-torch[session]``) builds Transformers4Rec-style
next-item models on Hugging Face transformers.
"""

from __future__ import annotations

from funnel_torch.predict import PredictPyTorch, configure_torch

__all__ = ["PredictPyTorch", "configure_torch"]
