"""funnel: compose, run and serve multi-stage recommender pipelines.

``from funnel import Schema, ColumnSchema, Tags, ColumnSelector, Operator, Ensemble``
"""

from funnel.ensemble import Ensemble
from funnel.errors import ExportError, FunnelError, OperatorNotFound, PluginNotInstalled, RequestError, SchemaError
from funnel.hookspecs import hookimpl
from funnel.operator import Dependency, NativeTritonModel, Node, Operator
from funnel.schema import ColumnSchema, Schema, Tags
from funnel.selector import ColumnSelector
from funnel.table import Ragged, Table

__version__ = "0.1.0"

__all__ = [
    "ColumnSchema", "ColumnSelector", "Dependency", "Ensemble", "ExportError", "FunnelError", "NativeTritonModel",
    "Node", "Operator", "OperatorNotFound", "PluginNotInstalled", "Ragged", "RequestError", "Schema", "SchemaError",
    "Table", "Tags", "hookimpl",
]
