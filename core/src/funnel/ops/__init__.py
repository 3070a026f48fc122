"""Built-in operators of core, registered through the same hook as every plugin."""

from funnel.ops.columns import AsType, Cast, Rename, Select
from funnel.ops.filter import FilterCandidates
from funnel.ops.ids import Fallback, KnownIds
from funnel.ops.unroll import UnrollFeatures

__all__ = ["UnrollFeatures", "FilterCandidates", "Cast", "AsType", "Select", "Rename", "KnownIds", "Fallback"]
