"""funnel-workflow: NVTabular-style preprocessing workflows, fitted offline, served online.

``import funnel_workflow as nvt`` — then ``nvt.ColumnSelector``, ``nvt.ops.*``,
``nvt.Workflow``, ``nvt.Dataset`` work as NVTabular's did (differences: README.md).
``TransformWorkflow(workflow)`` serves a fitted workflow inside a funnel graph.
"""

from __future__ import annotations

from typing import Any

import funnel.graph
from funnel.graph import Node
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.selector import ColumnSelector as _CoreSelector

from funnel_workflow import ops
from funnel_workflow.code import CodeError, UntrustedCodeError
from funnel_workflow.dataset import Dataset
from funnel_workflow.serving import TransformWorkflow
from funnel_workflow.workflow import Workflow

__all__ = [
    "ColumnSelector", "ColumnSchema", "CodeError", "Dataset", "Schema", "Tags", "TransformWorkflow",
    "UntrustedCodeError", "Workflow", "ops",
]
__version__ = "0.1.0"


class ColumnSelector(_CoreSelector):
    """funnel's ColumnSelector; ``selector + node`` concatenates and ``selector >> function``
    applies a LambdaOp (NVTabular allowed both)."""

    __slots__ = ()

    def __add__(self, other: Any) -> Any:  # type: ignore[override]
        if isinstance(other, Node):
            return Node.coerce(_CoreSelector(list(self.names), list(self.tags))) + other
        return _CoreSelector.__add__(self, other)

    def __radd__(self, other: Any) -> Any:
        if isinstance(other, Node):
            return other + Node.coerce(_CoreSelector(list(self.names), list(self.tags)))
        return _CoreSelector(list(other)) + self

    def __rshift__(self, other: Any) -> Any:  # `selector >> function` builds a LambdaOp
        return Node.coerce(_CoreSelector(list(self.names), list(self.tags))) >> other


funnel.graph.set_callable_adapter(ops.LambdaOp)
