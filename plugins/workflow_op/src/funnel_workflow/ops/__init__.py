"""Workflow operators (``nvt.ops``): NVTabular's names, parameters and semantics."""

from funnel_workflow.base import Operator, StatOperator
from funnel_workflow.ops.basic import (
    AddMetadata,
    AddProperties,
    AddTags,
    Bucketize,
    Clip,
    DifferenceLag,
    FillMissing,
    Filter,
    HashBucket,
    JoinExternal,
    LambdaOp,
    ListSlice,
    LogOp,
    Normalize,
    NormalizeMinMax,
    Rename,
    ValueCount,
)
from funnel_workflow.ops.categorify import Categorify
from funnel_workflow.ops.groupby import Groupby

__all__ = [
    "AddMetadata", "AddProperties", "AddTags", "Bucketize", "Categorify", "Clip", "DifferenceLag",
    "FillMissing", "Filter", "Groupby", "HashBucket", "JoinExternal", "LambdaOp", "ListSlice", "LogOp",
    "Normalize", "NormalizeMinMax", "Operator", "Rename", "StatOperator", "ValueCount",
]

#: every built-in operator class, registered under ``workflow.<Name>``
BUILTIN = [AddMetadata, AddProperties, AddTags, Bucketize, Categorify, Clip, DifferenceLag, FillMissing,
           Filter, Groupby, HashBucket, JoinExternal, LambdaOp, ListSlice, LogOp, Normalize, NormalizeMinMax,
           Rename, ValueCount]
