"""The plugin registry: one pluggy PluginManager; operators looked up by stable type name.

Loading, ``FUNNEL_LOAD_PLUGINS`` and the per-plugin error isolation: docs/plugins.md.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import msgspec
import pluggy

from funnel import hookspecs
from funnel.errors import OperatorNotFound, PluginNotInstalled, operator_missing  # noqa: F401 - registry.<Error> stays
from funnel.operator import Operator
from funnel.trust import import_operator

ENTRY_POINT_GROUP = "funnel.plugins"
#: install hints: type-name namespace of a first-party plugin → its pip distribution
KNOWN_DISTRIBUTIONS: Mapping[str, str] = MappingProxyType({
    "sampling": "funnel-sampling", "faiss": "funnel-faiss", "feast": "funnel-feast",
    "tf": "funnel-tensorflow", "torch": "funnel-torch", "workflow": "funnel-workflow"})


class PluginInfo(msgspec.Struct):
    """What ``funnel plugins`` reports for one plugin (``to_dict`` leaves out a ``None`` error)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    operators: list[str] = []
    hooks: list[str] = []
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in msgspec.structs.asdict(self).items() if k != "error" or v}


_lock = threading.RLock()
_state: dict[str, Any] = {"pm": None, "ops": None}  # ops: None until (re)collected
_infos: dict[str, PluginInfo] = {}


def _version(dist: str) -> str | None:
    return next((d.version for d in metadata.distributions(name=dist)), None)


def _fail(info: PluginInfo, message: str) -> str:
    info = _infos.setdefault(info.name, info)  # every failure lands here: the plugin's error, and a warning
    info.error = f"{info.error}; {message}" if info.error else message
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return message


def _add(pm: pluggy.PluginManager, obj: Any, info: PluginInfo) -> None:
    pm.register(obj, name=info.name)
    try:
        pm.check_pending()  # a misspelled hook name fails here
    except pluggy.PluginValidationError:
        pm.unregister(obj)
        raise
    info.hooks = sorted(h.name for h in pm.get_hookcallers(obj) or [])
    _infos[info.name], _state["ops"] = info, None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide PluginManager, with core's built-ins and the installed plugins loaded."""
    with _lock:
        if _state["pm"] is None:
            _state["pm"] = pm = pluggy.PluginManager("funnel")
            pm.add_hookspecs(hookspecs)
            from funnel.ops import plugin  # noqa: PLC0415 - the ops import what imports this

            _add(pm, plugin, PluginInfo("funnel", "funnel", _version("funnel")))
            raw = os.environ.get("FUNNEL_LOAD_PLUGINS")
            allowed = None if raw is None else {s.strip() for s in raw.split(",")}
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                info = PluginInfo(ep.name, *((ep.dist.name, ep.dist.version) if ep.dist else ()))
                if ep.name in _infos or (allowed is not None and not {ep.name, info.distribution} & allowed):
                    continue
                try:
                    _add(pm, ep.load(), info)
                except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
                    _fail(info, f'Error importing plugin "{ep.name}": {type(exc).__name__}: {exc}')
        return _state["pm"]


def call_each(hook: str, kwargs_for: Callable[[str], dict[str, Any]]) -> dict[str, str]:
    """Call ``hook`` of each plugin alone with ``kwargs_for(plugin name)``; the failures, by plugin, are returned."""
    pm, failures = get_plugin_manager(), {}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        info = _infos.get(impl.plugin_name) or PluginInfo(impl.plugin_name)
        try:
            pm.subset_hook_caller(hook, [p for p in pm.get_plugins() if p is not impl.plugin])(**kwargs_for(info.name))
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
            dist = f" (distribution {info.distribution!r})" if info.distribution not in (None, info.name) else ""
            failures[info.name] = _fail(info, f"plugin {info.name!r}{dist} failed in {hook}: "
                                              f"{type(exc).__name__}: {exc}")
    return failures


def _collector(staged: dict[str, dict[str, type[Operator]]], name: str) -> dict[str, Callable[[Any], None]]:
    mine = staged.setdefault(name, {})

    def register(cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Operator)):
            raise TypeError(f"{cls!r} is not an Operator subclass")
        if mine.setdefault(cls.type_name, cls) is not cls:
            raise ValueError(f"operator {cls.type_name!r} registered twice by the same plugin")
    return {"register": register}


def operators() -> Mapping[str, type[Operator]]:
    """Read-only type name → operator class, of the plugins whose whole ``register_operators`` succeeded."""
    with _lock:
        if _state["ops"] is None:
            staged: dict[str, dict[str, type[Operator]]] = {}
            failed = call_each("register_operators", lambda name: _collector(staged, name))
            _state["ops"] = ops = {}
            for name, mine in staged.items():
                clash = next((t for t, c in mine.items() if ops.get(t, c) is not c), None)
                if clash:
                    by = next(i.name for i in _infos.values() if clash in i.operators)
                    _fail(PluginInfo(name), f"plugin {name!r} failed in register_operators: operator {clash!r} "
                                            f"registered twice: by {by!r} and {name!r}")
                elif name not in failed:
                    ops.update(mine)
                    _infos.setdefault(name, PluginInfo(name)).operators = list(mine)
        return MappingProxyType(_state["ops"])


def plugins() -> list[PluginInfo]:
    """Every plugin seen (loaded or failed), core first."""
    operators()
    return list(_infos.values())


def get_operator(type_name: str, distribution: str | None = None, trust_code: bool | None = None) -> type[Operator]:
    """The operator class registered as ``type_name`` (or ``module:QualName``), else why not and what to do."""
    ops = operators()
    if type_name in ops or ":" in type_name:
        return ops.get(type_name) or import_operator(type_name, trust_code)
    namespace = type_name.split(".", 1)[0]
    dist = distribution or KNOWN_DISTRIBUTIONS.get(namespace)
    broken = next((i.error for i in _infos.values()
                   if i.error and (i.name == namespace or dist and i.distribution == dist)), None)
    restrict = os.environ.get("FUNNEL_LOAD_PLUGINS")
    left_out = dist and not broken and restrict is not None and _version(dist) is not None
    raise operator_missing(type_name, dist, broken, sorted(ops), restrict if left_out else None)


def register_plugin(obj: Any, name: str) -> None:
    """Register a plugin object (module or instance with hookimpls) by name — for tests and apps."""
    with _lock:
        _add(get_plugin_manager(), obj, PluginInfo(name))


def unregister_plugin(name: str) -> None:
    """Undo :func:`register_plugin`."""
    with _lock:
        get_plugin_manager().unregister(name=name)
        _infos.pop(name, None)
        _state["ops"] = None


def reset() -> None:
    """Forget every loaded plugin (the next lookup loads them again). For tests."""
    with _lock:
        _state.update(pm=None, ops=None)
        _infos.clear()
