"""funnel-scale: run and ship funnel graphs beyond one machine.

- :class:`DaskExecutor` scores a parquet dataset (or a pandas/dask DataFrame) with a funnel
  graph on a Dask cluster and writes parquet with the graph's output schema
  (:mod:`funnel_scale.dask`, ``funnel score``);
- :func:`check_repository` / :func:`push_repository` check that an exported Triton model
  repository is self-contained and upload it to ``s3://`` (:mod:`funnel_scale.storage`,
  ``funnel repo check|push``);
- :func:`kserve_manifest` writes the KServe ``InferenceService`` serving an export on
  KServe's Triton runtime (:mod:`funnel_scale.deploy`, ``funnel deploy kserve``).

It registers no operators. Names are imported on first use, so loading the plugin (which
every ``funnel`` command and every served model does) imports none of dask, boto3 or kserve.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DaskExecutor": "dask",
    "GraphSpec": "dask",
    "PartitionError": "dask",
    "ScoreResult": "dask",
    "arrow_schema": "dask",
    "to_arrow": "dask",
    "StorageError": "storage",
    "check_repository": "storage",
    "parse_s3_url": "storage",
    "push_repository": "storage",
    "DeployError": "deploy",
    "kserve_manifest": "deploy",
    "read_repository": "deploy",
    "to_yaml": "deploy",
    "validate_manifest": "deploy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'funnel_scale' has no attribute {name!r}; it exports {__all__}")
    value = getattr(importlib.import_module(f"funnel_scale.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
