"""funnel-triton: serve funnel exports on Triton and query them.

- :class:`TritonServer` runs the embedded ``tritonserver`` (from the ``nvidia-pytriton`` wheel)
  or any ``tritonserver`` on a repository written by ``Ensemble.export()``: loopback and free
  ports, readiness wait, a watchdog that restarts a dead model stub, admin APIs behind a key
  (:mod:`funnel_triton.server`, ``funnel serve``);
- :func:`make_client`, :func:`infer`, :func:`table_to_inputs`, :func:`response_to_table` and
  :func:`cast_to_model` turn tables into Triton requests and responses back into tables, over
  HTTP or gRPC (:mod:`funnel_triton.client`, ``funnel infer``).

Exporting and the code served models run (``funnel.triton``) are core's; this package only
starts servers and talks to them.
"""

from __future__ import annotations

from funnel_triton.client import cast_to_model, infer, make_client, response_to_table, table_to_inputs
from funnel_triton.server import TritonServer, find_tritonserver

__all__ = [
    "TritonServer",
    "cast_to_model",
    "find_tritonserver",
    "infer",
    "make_client",
    "response_to_table",
    "table_to_inputs",
]
