"""Serving funnel graphs on Triton: export, runtime (inside the server), embedded server, client.

``ensemble.export(repo)`` writes a model repository (:func:`export_ensemble`);
``with TritonServer(repo) as server: server.infer(table)`` serves and queries it.
See docs/serving.md.
"""

from funnel.triton.client import infer, make_client, response_to_table, table_to_inputs
from funnel.triton.export import export_ensemble
from funnel.triton.server import TritonServer, find_tritonserver

__all__ = [
    "TritonServer",
    "export_ensemble",
    "find_tritonserver",
    "infer",
    "make_client",
    "response_to_table",
    "table_to_inputs",
]
