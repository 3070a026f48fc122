"""Write a Triton model repository for an Ensemble (executor or ensemble mode).

Nothing is pickled: graphs and operator configs are JSON, artifacts are the files the operators
write, and every ``model.py`` is a shim importing :mod:`funnel.triton.runtime` (``funnel.files``).
The write is atomic: the target directory always exists.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funnel.errors import ExportError
from funnel.files import DEFAULT_MAX_REQUEST_ROWS, EXECUTOR_SHIM, GRAPH_FILE, MANIFEST_FILE, dumps_json
from funnel.registry import operators
from funnel.triton import config as cfg
from funnel.triton.wire import REQUEST, tensor_specs, wire_form
from funnel.trust import trust_code_enabled

if TYPE_CHECKING:
    from funnel.ensemble import Ensemble

__all__ = ["export_ensemble"]

#: renameat2(2)'s AT_FDCWD and RENAME_EXCHANGE
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def export_ensemble(
    ensemble: Ensemble, path: str | os.PathLike[str], mode: str = "executor", name: str = "funnel", version: int = 1,
    instance_kind: str = "cpu", instance_count: int = 1, max_batch_size: int = 256, dynamic_batching: bool = True,
    overwrite: bool = False, max_queue_delay_us: int = 0, native_backends: bool = True,
    execution_env: str | os.PathLike[str] | None = None, max_request_rows: int | None = None, trust_code: bool = False,
) -> Path:
    """Write a Triton model repository serving ``ensemble`` at ``path``; returns ``path``.

    ``mode="executor"``: one Python-backend model ``name`` runs the whole graph; ``"ensemble"``: one model
    per operator (its native backend unless ``native_backends=False``) wired by an ensemble model ``name``.
    ``execution_env`` sets ``EXECUTION_ENV_PATH``; ``max_request_rows`` (default 4096; 0 = no limit) refuses
    larger requests with HTTP 400; ``trust_code`` lets the served model import ``module:Name`` operators no
    plugin registers; a non-empty ``path`` needs ``overwrite=True``. See docs/serving.md, docs/reliability.md.
    """
    if mode not in ("executor", "ensemble"):
        raise ExportError(f"mode must be 'executor' or 'ensemble', got {mode!r}")
    if instance_kind not in ("cpu", "gpu"):
        raise ExportError(f"instance_kind must be 'cpu' or 'gpu', got {instance_kind!r}")
    if int(version) < 1 or int(instance_count) < 1 or int(max_batch_size) < 0:
        raise ExportError("version and instance_count must be >= 1 and max_batch_size >= 0")
    rows = DEFAULT_MAX_REQUEST_ROWS if max_request_rows is None else int(max_request_rows)
    if rows < 0:
        raise ExportError(f"max_request_rows must be >= 0 (0 = no limit), got {max_request_rows!r}")
    _check_trust(ensemble, trust_code, mode, native_backends)
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise ExportError(f"{target} is not empty; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    parameters = {"FUNNEL_MAX_REQUEST_ROWS": str(rows), **({"FUNNEL_TRUST_CODE": "1"} if trust_code else {}),
                  **({"EXECUTION_ENV_PATH": os.fspath(execution_env)} if execution_env else {})}
    opts = {"version": int(version), "instance_kind": instance_kind, "instance_count": int(instance_count),
            "max_batch_size": int(max_batch_size), "dynamic_batching": bool(dynamic_batching),
            "max_queue_delay_us": int(max_queue_delay_us), "parameters": parameters}
    graph = ensemble.to_dict()  # once: finding plugin distributions scans installed packages
    ops = graph.get("operators", {})
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        if mode == "executor":
            models = [_write_executor(ensemble, graph, tmp, name, **opts)]
        else:
            from funnel.triton.ensemble_mode import write_ensemble_models  # noqa: PLC0415

            models = write_ensemble_models(ensemble, graph, tmp, name, native_backends=native_backends, **opts)
        # the plugins the served models need: each distribution the operators come from, by name
        dists = {info["distribution"]: info.get("version") for info in ops.values() if (info or {}).get("distribution")}
        manifest = {"format": "funnel-triton-repository/1", "funnel_version": graph.get("funnel_version"),
                    "mode": mode, "entry_model": name, "models": sorted(models), "operators": ops,
                    "plugins": [{"distribution": d, "version": dists[d]} for d in sorted(dists)]}
        (tmp / MANIFEST_FILE).write_bytes(dumps_json(manifest))
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _check_trust(ensemble: Ensemble, trust_code: bool, mode: str, native_backends: bool) -> None:
    """Warn, at export, about operators the served model can rebuild only by importing code:
    without trust_code the served model refuses to load them (docs/reliability.md)."""
    if trust_code_enabled(trust_code):
        return
    registered = operators()
    untrusted = sorted({
        op.type_name for op in (b.node.op for b in ensemble.graph.op_nodes)
        if op is not None and ":" in op.type_name and op.type_name not in registered
        and op.type_name.split(":", 1)[0].split(".")[0] != "funnel"  # funnel's own modules are trusted
        # served by its native backend: nothing imports it
        and not (mode == "ensemble" and native_backends and op.native_triton_model() is not None)
    })
    if untrusted:
        warnings.warn(f"operator type(s) {untrusted} are not registered by any funnel plugin: the served model "
                      "will refuse to import their modules unless trusted. Register them through a plugin "
                      "(docs/writing-a-plugin.md), or export with trust_code=True (or set FUNNEL_TRUST_CODE=1 "
                      "where the server runs) if you trust that code", UserWarning, stacklevel=3)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _replace(tmp: Path, target: Path) -> None:
    """Put ``tmp`` at ``target``; an existing target directory is swapped out atomically, then removed (no
    moment without ``target``; where the OS cannot swap: old renamed aside, new renamed in)."""
    os.chmod(tmp, 0o755)
    if not target.is_dir() or target.is_symlink():
        target.unlink(missing_ok=True)
        os.replace(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old repository
    else:
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)


def _write_executor(ensemble: Ensemble, graph: dict[str, Any], root: Path, name: str, version: int,
                    parameters: dict[str, str], **config: Any) -> str:
    """The executor-mode model ``name``: the whole graph, its artifacts, the shim and config.pbtxt."""
    version_dir = root / name / str(version)
    version_dir.mkdir(parents=True)
    ensemble.write_artifacts(version_dir / "artifacts")
    (version_dir / GRAPH_FILE).write_bytes(dumps_json(graph))
    (version_dir / "model.py").write_text(EXECUTOR_SHIM)
    form = wire_form(ensemble.input_schema) if config["max_batch_size"] > 0 else REQUEST  # docs/serving.md
    specs = [tensor_specs(schema, form=form) for schema in (ensemble.input_schema, ensemble.output_schema)]
    parameters = {"FUNNEL_DEVICE": config["instance_kind"], "FUNNEL_WIRE_FORM": form, **parameters}
    (root / name / "config.pbtxt").write_text(cfg.python_model_config(name, *specs, parameters=parameters, **config))
    return name
