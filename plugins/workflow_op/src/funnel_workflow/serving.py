"""TransformWorkflow: a fitted workflow as one operator of a funnel graph (served on Triton).

Raw interaction rows in, the workflow's output out (one row per session after a Groupby).
Offline-only steps (``Filter`` by default) are skipped. The fitted statistics are loaded
once, with the operator; each request runs the built-in operators on numpy arrays and
only LambdaOps / user operators on pandas.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from funnel.errors import SchemaError
from funnel.operator import Operator
from funnel.schema import Schema
from funnel.table import Table

from funnel_workflow.workflow import Plan, Workflow

__all__ = ["TransformWorkflow"]

WORKFLOW_DIR = "workflow"


class TransformWorkflow(Operator):
    """Run a fitted :class:`~funnel_workflow.Workflow` on request rows.

    ``workflow.input_schema.column_names >> TransformWorkflow(workflow)``; the served model
    loads saved code (lambdas, user ops) only when the server's environment sets
    ``FUNNEL_TRUST_CODE=1`` (or ``trust_code=True`` is passed when loading in-process).
    """

    type_name = "workflow.TransformWorkflow"

    def __init__(self, workflow: Workflow | None = None, trust_code: bool | None = None, **info: Any) -> None:
        self.workflow = workflow
        self.trust_code = trust_code
        self.changes_rows = False
        if workflow is not None:
            self._prepare()

    def _prepare(self) -> None:
        wf = self.workflow
        assert wf is not None
        if wf.graph is None:
            raise SchemaError("TransformWorkflow: the workflow is not fitted; call workflow.fit(dataset) first")
        self._graph = wf.serving_graph()
        self._out_schema = wf.serving_output_schema()
        self._plan = Plan(self._graph, serving=True)
        self.changes_rows = wf.changes_rows
        self.skipped = wf.offline_only_ops()
        self.warnings = _encoded_group_keys(self._graph)
        for message in self.warnings:
            warnings.warn(message, UserWarning, stacklevel=3)

    @property
    def input_schema(self) -> Schema:
        assert self.workflow is not None and self.workflow.input_schema is not None
        return self.workflow.input_schema

    def compute_output_schema(self, input_schema: Schema) -> Schema:
        if self.workflow is None:
            raise SchemaError("TransformWorkflow: no workflow loaded")
        self.require(input_schema, self.input_schema.column_names)
        return self._out_schema

    def transform(self, table: Table) -> Table:
        return self._plan.run(table)

    def to_config(self) -> dict[str, Any]:
        if self.workflow is None:
            return {}
        return {"input_columns": self.input_schema.column_names, "skipped_offline_only": self.skipped}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TransformWorkflow:
        return cls()

    def save_artifacts(self, directory: Path) -> None:
        assert self.workflow is not None
        self.workflow.save(Path(directory) / WORKFLOW_DIR)

    def load_artifacts(self, directory: Path) -> None:
        self.workflow = Workflow.load(Path(directory) / WORKFLOW_DIR, trust_code=self.trust_code)
        self._prepare()

    @property
    def label(self) -> str:
        return "TransformWorkflow"


def _encoded_group_keys(graph: Any) -> list[str]:
    """Warnings for Groupby keys that a Categorify encoded: at serving, every session unseen
    at fit time gets the same out-of-vocabulary id, so those sessions form one group."""
    out = []
    for b in graph.op_nodes:
        keys = getattr(b.node.op, "groupby_cols", None)
        if not keys or getattr(b.node.op, "offline_only", False):
            continue
        for key in keys:
            col = b.input_schema.get(key)
            if col is not None and "encoding" in col.properties:
                out.append(
                    f"TransformWorkflow: Groupby key {key!r} is Categorify-encoded; at serving every {key} "
                    "unseen at fit time maps to the out-of-vocabulary id, and those rows form ONE group. "
                    f"For live traffic group on the raw {key} (Categorify it after the Groupby, or not at all)"
                )
    return out
