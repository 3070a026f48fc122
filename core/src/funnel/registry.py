"""The plugin registry: one pluggy PluginManager; operators looked up by stable type name.

Plugins are modules named by entry points in the ``funnel.plugins`` group, loaded on first
use; ``FUNNEL_LOAD_PLUGINS`` (comma-separated entry-point or distribution names, empty =
none) restricts which. Core's built-ins (:mod:`funnel.ops.plugin`) are a plugin like any other.
Hooks run through pluggy one plugin at a time: a plugin whose import or hook raises gets that
as its error (``funnel plugins`` shows it); the others are unaffected.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

import pluggy

from funnel import hookspecs
from funnel.errors import OperatorNotFound, PluginNotInstalled
from funnel.operator import Operator
from funnel.trust import import_operator

ENTRY_POINT_GROUP = "funnel.plugins"
#: install hints: type-name namespace of a first-party plugin → its pip distribution
KNOWN_DISTRIBUTIONS: Mapping[str, str] = MappingProxyType({
    "sampling": "funnel-sampling", "faiss": "funnel-faiss", "feast": "funnel-feast",
    "tf": "funnel-tensorflow", "torch": "funnel-torch", "workflow": "funnel-workflow"})


@dataclass
class PluginInfo:
    """What ``funnel plugins`` reports for one plugin (``to_dict`` leaves out a ``None`` error)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    operators: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "error" or v}


_lock = threading.RLock()
_state: dict[str, Any] = {"pm": None, "ops": None}  # ops: None until (re)collected
_infos: dict[str, PluginInfo] = {}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _fail(name: str, message: str) -> str:
    info = _infos.setdefault(name, PluginInfo(name))
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
            from funnel.ops import plugin as builtin  # noqa: PLC0415 - the ops import what imports this

            _add(pm, builtin, PluginInfo("funnel", "funnel", _version("funnel")))
            raw = os.environ.get("FUNNEL_LOAD_PLUGINS")
            allowed = None if raw is None else {s.strip() for s in raw.split(",")}
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                info = PluginInfo(ep.name, *((ep.dist.name, ep.dist.version) if ep.dist else ()))
                if ep.name in _infos or (allowed is not None and not {ep.name, info.distribution} & allowed):
                    continue
                try:
                    _add(pm, ep.load(), info)
                except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
                    _infos[ep.name] = info
                    _fail(ep.name, f'Error importing plugin "{ep.name}": {type(exc).__name__}: {exc}')
        return _state["pm"]


def call_each(hook: str, kwargs_for: Callable[[str], dict[str, Any]]) -> dict[str, str]:
    """Call ``hook`` of each plugin on its own, with ``kwargs_for(plugin name)``; returns the
    failures (plugin name → message), each recorded as that plugin's error."""
    pm, failures = get_plugin_manager(), {}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        name = impl.plugin_name
        try:
            pm.subset_hook_caller(hook, [p for p in pm.get_plugins() if p is not impl.plugin])(**kwargs_for(name))
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
            dist = _infos.get(name, PluginInfo(name)).distribution
            where = f" (distribution {dist!r})" if dist not in (None, name) else ""
            failures[name] = _fail(name, f"plugin {name!r}{where} failed in {hook}: {type(exc).__name__}: {exc}")
    return failures


def _collector(classes: list[type[Operator]]) -> Callable[[Any], None]:
    def register(cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Operator)):
            raise TypeError(f"{cls!r} is not an Operator subclass")
        if any(c.type_name == cls.type_name and c is not cls for c in classes):
            raise ValueError(f"operator {cls.type_name!r} registered twice by the same plugin")
        classes.append(cls)
    return register


def operators() -> Mapping[str, type[Operator]]:
    """Read-only type name → operator class, over every loaded plugin. A plugin's operators
    count only when its whole ``register_operators`` succeeded."""
    with _lock:
        if _state["ops"] is None:
            staged: dict[str, list[type[Operator]]] = {}
            failed = call_each("register_operators", lambda name: {"register": _collector(staged.setdefault(name, []))})
            ops: dict[str, type[Operator]] = {}
            for name, classes in staged.items():
                clash = next((c.type_name for c in classes if ops.get(c.type_name, c) is not c), None)
                if clash:
                    by = next(i.name for i in _infos.values() if clash in i.operators)
                    _fail(name, f"plugin {name!r} failed in register_operators: operator {clash!r} registered "
                                f"twice: by {by!r} and {name!r}")
                elif name not in failed:
                    ops.update((c.type_name, c) for c in classes)
                    _infos.setdefault(name, PluginInfo(name)).operators = [c.type_name for c in classes]
            _state["ops"] = ops
        return MappingProxyType(_state["ops"])


def plugins() -> list[PluginInfo]:
    """Every plugin seen (loaded or failed), core first."""
    operators()
    return list(_infos.values())


def get_operator(type_name: str, distribution: str | None = None, trust_code: bool | None = None) -> type[Operator]:
    """The operator class registered as ``type_name`` (``module:QualName``:
    :func:`funnel.trust.import_operator`). Unknown: PluginNotInstalled naming the distribution
    to install (``distribution`` is the hint an export recorded), else OperatorNotFound."""
    ops = operators()
    if type_name in ops:
        return ops[type_name]
    if ":" in type_name:
        return import_operator(type_name, trust_code)
    namespace = type_name.split(".", 1)[0]
    dist = distribution or KNOWN_DISTRIBUTIONS.get(namespace)
    broken = [i.error for i in _infos.values() if i.error and (i.name == namespace or (dist and i.distribution == dist))]
    if dist is None and broken:
        raise OperatorNotFound(f"operator {type_name!r} is not available: {broken[0]}. Fix or reinstall that "
                               "plugin (or leave it out with FUNNEL_LOAD_PLUGINS)")
    if dist is None:
        raise OperatorNotFound(f"unknown operator {type_name!r}; installed operators: {', '.join(sorted(ops)) or 'none'}")
    provided = f"operator {type_name!r} is provided by the plugin distribution {dist!r}, which is"
    restrict = os.environ.get("FUNNEL_LOAD_PLUGINS")
    if not broken and restrict is not None and _version(dist) is not None:
        raise PluginNotInstalled(f"{provided} installed but not loaded: FUNNEL_LOAD_PLUGINS={restrict!r} leaves it "
                                 f"out. Add {dist!r} to FUNNEL_LOAD_PLUGINS (or unset it); where it is not "
                                 f"installed: pip install {dist}", distribution=dist)
    cause = f" (it is installed but failed to load: {broken[0]})" if broken else ""
    raise PluginNotInstalled(f"{provided} not loaded{cause}. Install it with: pip install {dist}", distribution=dist)


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
