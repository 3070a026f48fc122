"""Binding a composed graph: schema propagation, the lifting rule, and the graph as plain data."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from funnel.errors import ExportError, SchemaError
from funnel.operator import Dependency, Node, Operator, set_callable_adapter
from funnel.schema import Schema
from funnel.selector import ColumnSelector

# Node, Dependency and set_callable_adapter live with the operator protocol (funnel.operator);
# they stay importable from here, where plugins written against earlier versions look for them.
__all__ = ["Graph", "BoundNode", "check_graph_data", "Node", "Dependency", "set_callable_adapter"]


@dataclass(slots=True, eq=False, repr=False)
class BoundNode:
    """A node with its input and output schemas resolved against a request schema."""

    node: Node
    index: int
    input_schema: Schema
    output_schema: Schema
    #: a row-wise op running over candidate-aligned list columns
    lifted: bool


def _bound_copy(node: Node) -> Node:
    """An op node for one graph: a shallow copy of its operator with its own Dependency objects, which
    binding resolves, so one operator serves several graphs (an index or a model is shared, not copied)."""
    op = copy.copy(node.op)
    state = getattr(op, "__dict__", {})
    state.update({name: Dependency(value) for name, value in state.items() if isinstance(value, Dependency)})
    return Node("op", node.parents, op=op)


def _lifted(op: Operator, schema: Schema) -> bool:
    """The lifting rule (docs/architecture.md): a ``rowwise`` op runs lifted when every input column is a
    ragged list, as is over scalars; a mix is refused here, at bind time: neither reading is right."""
    if not op.rowwise or len(schema) == 0:
        return False
    ragged = [c.name for c in schema if c.is_list and c.is_ragged]
    if ragged and len(ragged) < len(schema):
        others = [c.name for c in schema if c.name not in ragged]
        raise SchemaError(f"{op.label} is row-wise (rowwise=True): it runs over candidate lists only when every "
                          f"input column is a ragged list, but {ragged} are ragged lists and {others} are not. "
                          "Flatten the lists first (UnrollFeatures) or select only the list columns for it")
    return bool(ragged)


_NODE_KINDS = ("select", "op", "concat", "drop")


def check_graph_data(data: Any, source: str = "the graph description") -> None:
    """Check the structure of :meth:`Graph.to_dict` output before anything is rebuilt: an ExportError
    names ``source``, the node and what is wrong (a missing key or kind, an index not of an earlier node)."""
    def fail(what: str) -> ExportError:
        return ExportError(f"{source}: {what} (the file was hand-edited or is corrupt; export the graph again)")

    if not isinstance(data, Mapping):
        raise fail("'graph' must be an object")
    for key in ("request_schema", "output", "nodes"):
        if key not in data:
            raise fail(f"'graph' has no {key!r} key")
    nodes = data["nodes"]
    if not isinstance(nodes, list) or not nodes:
        raise fail("'graph.nodes' must be a non-empty list")
    seen: set[int] = set()
    for pos, entry in enumerate(nodes):
        if not isinstance(entry, Mapping):
            raise fail(f"node entry {pos} is not an object")
        for key in ("index", "kind", "parents"):
            if key not in entry:
                raise fail(f"node entry {pos} has no {key!r} key")
        index, kind, parents = entry["index"], entry["kind"], entry["parents"]
        if not isinstance(index, int) or isinstance(index, bool) or index in seen:
            raise fail(f"node entry {pos} has index {index!r}; indexes are distinct integers")
        if kind not in _NODE_KINDS:
            raise fail(f"node {index} has kind {kind!r}; expected one of {list(_NODE_KINDS)}")
        if not isinstance(parents, list):
            raise fail(f"node {index}: 'parents' must be a list of node indexes")
        for parent in parents:
            if parent not in seen:
                raise fail(f"node {index} names parent {parent!r}, which is not an earlier node "
                           f"(nodes so far: {sorted(seen)})")
        if kind == "op":
            op = entry.get("op")
            if not isinstance(op, Mapping) or "type" not in op or "config" not in op:
                raise fail(f"node {index} (op) needs an 'op' object with 'type' and 'config'")
            for name, dep in (entry.get("dep_parents") or {}).items():
                if dep not in seen:
                    raise fail(f"node {index}: dependency {name!r} names node {dep!r}, which is not an earlier node")
        elif kind == "select" and "columns" not in entry:
            raise fail(f"node {index} (select) has no 'columns'")
        seen.add(index)
    if data["output"] not in seen:
        raise fail(f"'graph.output' is {data['output']!r}, which is not a node (nodes: {sorted(seen)})")


class Graph:
    """A bound graph: nodes in topological order with their schemas."""

    def __init__(self, output_node: Node, request_schema: Schema) -> None:
        self.output_node = Node.coerce(output_node)
        self.request_schema = request_schema
        self.nodes: list[BoundNode] = []
        self._by_id: dict[int, BoundNode] = {}
        for index, node in enumerate(self._topological()):
            self._bind(index, node)

    def __iter__(self) -> Any:
        return iter(self.nodes)

    def bound(self, node: Node) -> BoundNode:
        """The bound form of ``node``."""
        return self._by_id[node.id]

    @property
    def output_schema(self) -> Schema:
        """Schema of the graph's output."""
        return self._by_id[self.output_node.id].output_schema

    @property
    def op_nodes(self) -> list[BoundNode]:
        """Bound nodes that apply an operator, in execution order."""
        return [b for b in self.nodes if b.node.kind == "op"]

    def _topological(self) -> list[Node]:
        """Depth-first, parents in order (an explicit stack: deep graphs need no recursion)."""
        order: list[Node] = []
        state: dict[int, int] = {}  # node id → 1 while its parents are visited, 2 once placed
        stack: list[tuple[Node, bool]] = [(self.output_node, False)]
        while stack:
            node, done = stack.pop()
            if done:
                state[node.id] = 2
                order.append(node)
            elif state.get(node.id) == 1:
                raise SchemaError(f"the graph has a cycle through {node.label}")
            elif state.get(node.id) != 2:
                state[node.id] = 1
                stack.append((node, True))
                stack.extend((p, False) for p in reversed(node.parents) if state.get(p.id) != 2)
        return order

    def _bind(self, index: int, node: Node) -> None:
        user_node = node
        parents = [self._by_id[p.id].output_schema for p in node.parents]
        in_schema, lifted = parents[0] if parents else self.request_schema, False
        if node.kind == "select":
            where = f"selecting from {node.parents[0].label}" if parents else "selecting from the request"
            out = node.selector.resolve(in_schema, where=where)  # type: ignore[union-attr]
        elif node.kind == "concat":
            in_schema = out = sum(parents, Schema())
        elif node.kind == "drop":
            names = node.selector.names if node.selector is not None else parents[1].column_names
            out = in_schema.excluding_by_name(names)
        elif node.kind == "op":
            node = _bound_copy(node)
            in_schema, out, lifted = self._bind_op(node.op, parents)  # type: ignore[arg-type]
        else:  # pragma: no cover - constructed only by this module
            raise SchemaError(f"unknown node kind {node.kind!r}")
        bound = BoundNode(node, index, in_schema, out, lifted)
        self.nodes.append(bound)
        self._by_id[node.id] = self._by_id[user_node.id] = bound  # the user's op node finds its bound copy

    def _bind_op(self, op: Operator, parents: list[Schema]) -> tuple[Schema, Schema, bool]:
        in_schema, dep_schemas = parents[0], iter(parents[1:])
        for name, dep in op.dependencies().items():
            if dep.node is None:
                missing = [c for c in dep.columns or [] if c not in in_schema]
                if missing:
                    hint = (f" They are request columns: pass ColumnSelector({missing}) to read them from the request."
                            if all(c in self.request_schema for c in missing)
                            else " Pass the node that produces them instead of their names.")
                    raise SchemaError(f"{op.label}: dependency {name!r} names column(s) {missing} that are not among "
                                      f"its upstream columns {in_schema.column_names}.{hint}")
                continue
            dep_schema = next(dep_schemas)
            if dep.columns is None:
                dep.columns = dep_schema.column_names
            try:
                dep_cols = dep_schema.select_by_name(dep.columns)
            except SchemaError:
                raise SchemaError(f"{op.label}: dependency {name!r} needs column(s) {dep.columns}; "
                                  f"its node produces {dep_schema.column_names}") from None
            clash = [c for c in dep_cols.column_names if c in in_schema and in_schema[c] != dep_cols[c]]
            if clash:
                raise SchemaError(f"{op.label}: dependency {name!r} column(s) {clash} clash with upstream columns of "
                                  "the same name; rename one side (e.g. an output prefix)")
            in_schema = in_schema + dep_cols
        lifted = _lifted(op, in_schema)
        try:
            out = op.compute_output_schema(Schema([c.element() for c in in_schema]) if lifted else in_schema)
            if lifted:
                out = Schema([c.as_list() for c in out])
        except SchemaError:
            raise
        except Exception as exc:  # an implementation bug or a backend error: say where
            raise SchemaError(f"{op.label}: computing the output schema failed: {exc}") from exc
        if not isinstance(out, Schema):
            raise SchemaError(f"{op.label}.compute_output_schema must return a Schema, got {type(out).__name__}")
        return in_schema, out, lifted

    # -- serialization ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], operators: Mapping[int, Operator]) -> Graph:
        """Rebuild a graph from :meth:`to_dict` output and the rebuilt operators (node index → operator)."""
        nodes: dict[int, Node] = {}
        for entry in sorted(data["nodes"], key=lambda e: e["index"]):
            parents = [nodes[i] for i in entry["parents"]]
            if entry["kind"] == "op":
                op = operators[entry["index"]]
                dep_parents = entry.get("dep_parents", {})
                for name, dep in op.dependencies().items():
                    if dep_parents.get(name) is not None:
                        dep.node = nodes[dep_parents[name]]
                node = Node("op", parents, op=op)
            else:
                selector = ColumnSelector(entry["columns"], entry.get("tags")) if "columns" in entry else None
                node = Node(entry["kind"], parents, selector=selector)
            nodes[entry["index"]] = node
        return cls(nodes[data["output"]], Schema.from_dict(data["request_schema"]))

    def to_dict(self, op_configs: Mapping[int, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Plain-data description of the bound graph (no pickles; ops as type + config)."""
        ids = {node_id: b.index for node_id, b in self._by_id.items()}
        nodes = []
        for b in self.nodes:
            n = b.node
            entry: dict[str, Any] = {"index": b.index, "kind": n.kind, "parents": [ids[p.id] for p in n.parents]}
            entry["output_schema"] = b.output_schema.to_dict()
            if n.selector is not None:
                entry["columns"] = list(n.selector.names)
                if n.selector.tags:
                    entry["tags"] = list(n.selector.tags)
            if n.kind == "op":
                deps = n.op.dependencies()
                entry["op"] = {"type": n.op.type_name, "config": (op_configs or {}).get(b.index, n.op.to_config())}
                entry["op"]["dependencies"] = {k: d.columns for k, d in deps.items()}
                entry["dep_parents"] = {k: ids[d.node.id] for k, d in deps.items() if d.node is not None}
                entry["input_schema"] = b.input_schema.to_dict()
                entry["lifted"] = b.lifted
            nodes.append(entry)
        return {"request_schema": self.request_schema.to_dict(), "output": ids[self.output_node.id], "nodes": nodes}
