"""The plugin registry: one pluggy PluginManager, operators looked up by type name.

Plugins are modules named by entry points in the ``funnel.plugins`` group. Loading is lazy
(first lookup) and idempotent. ``FUNNEL_LOAD_PLUGINS`` restricts which entry points load:
a comma-separated list of entry-point or distribution names; an empty value loads none.
Core's built-in operators register through the same hook as every plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pluggy

from funnel import hookspecs
from funnel.errors import OperatorNotFound, PluginNotInstalled
from funnel.operator import Operator

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_DISTRIBUTIONS",
    "PluginInfo",
    "get_plugin_manager",
    "get_operator",
    "operators",
    "plugins",
    "record_plugin_error",
    "register_plugin",
    "unregister_plugin",
    "trust_code_enabled",
    "TRUST_CODE_ENV",
]

#: environment switch equal to ``trust_code=True`` (Ensemble.load, export, the served runtime)
TRUST_CODE_ENV = "FUNNEL_TRUST_CODE"


def trust_code_enabled(trust_code: bool | None = None) -> bool:
    """``trust_code`` when given, else whether ``FUNNEL_TRUST_CODE`` is ``1``/``true``/``yes``."""
    if trust_code is not None:
        return bool(trust_code)
    return os.environ.get(TRUST_CODE_ENV, "").strip().lower() in ("1", "true", "yes")

ENTRY_POINT_GROUP = "funnel.plugins"

#: Operator namespaces of first-party plugins → the pip distribution that provides them.
KNOWN_DISTRIBUTIONS: Mapping[str, str] = MappingProxyType(
    {
        "sampling": "funnel-sampling",
        "faiss": "funnel-faiss",
        "feast": "funnel-feast",
        "tf": "funnel-tensorflow",
        "torch": "funnel-torch",
        "workflow": "funnel-workflow",
    }
)


@dataclass
class PluginInfo:
    """What ``funnel plugins`` reports for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    operators: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        data: dict[str, Any] = {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "operators": self.operators,
            "hooks": self.hooks,
        }
        if self.error:
            data["error"] = self.error
        return data


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pm = pluggy.PluginManager("funnel")
        self.pm.add_hookspecs(hookspecs)
        self.loaded = False
        self.infos: dict[str, PluginInfo] = {}
        self.ops: dict[str, type[Operator]] = {}
        self.op_owner: dict[str, str] = {}
        self.ops_stale = True

    # -- loading --------------------------------------------------------------------------
    def ensure_loaded(self) -> None:
        with self.lock:
            if self.loaded:
                return
            self.loaded = True
            from funnel.ops import plugin as builtin  # noqa: PLC0415 - avoid import cycle

            self._register(builtin, "funnel", PluginInfo("funnel", "funnel", _version("funnel")))
            self._load_entry_points()
            self.pm.check_pending()
            self.ops_stale = True

    def _load_entry_points(self) -> None:
        raw = os.environ.get("FUNNEL_LOAD_PLUGINS")
        allowed = None if raw is None else {s.strip() for s in raw.split(",") if s.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if allowed is not None and ep.name not in allowed and (dist not in allowed):
                continue
            if ep.name in self.infos:
                continue
            info = PluginInfo(ep.name, dist, version)
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
                info.error = f'Error importing plugin "{ep.name}": {type(exc).__name__}: {exc}'
                info.error_traceback = traceback.format_exc()  # type: ignore[attr-defined]
                self.infos[ep.name] = info
                warnings.warn(info.error, RuntimeWarning, stacklevel=3)
                continue
            self._register(module, ep.name, info)

    def _register(self, obj: Any, name: str, info: PluginInfo) -> None:
        self.pm.register(obj, name=name)
        info.hooks = sorted(
            h.name for h in self.pm.get_hookcallers(obj) or []  # type: ignore[union-attr]
        )
        self.infos[name] = info
        self.ops_stale = True

    # -- operators ------------------------------------------------------------------------
    def collect(self) -> None:
        self.ensure_loaded()
        with self.lock:
            if not self.ops_stale:
                return
            ops: dict[str, type[Operator]] = {}
            owner: dict[str, str] = {}
            for info in self.infos.values():
                info.operators = []
            for impl in self.pm.hook.register_operators.get_hookimpls():
                plugin_name = impl.plugin_name
                staged: list[type[Operator]] = []
                try:
                    # a plugin's operators count only when its whole hook succeeds
                    impl.function(register=staged.append)
                    mine: dict[str, type[Operator]] = {}
                    for cls in staged:
                        if not (isinstance(cls, type) and issubclass(cls, Operator)):
                            raise TypeError(f"plugin {plugin_name!r} registered {cls!r}, which is not an Operator subclass")
                        name = cls.type_name
                        taken = ops.get(name, mine.get(name))
                        if taken is not None and taken is not cls:
                            by = owner.get(name, plugin_name)
                            raise ValueError(f"operator {name!r} registered twice: by {by!r} and {plugin_name!r}")
                        mine[name] = cls
                except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the rest
                    info = self.infos.setdefault(plugin_name, PluginInfo(plugin_name))
                    where = f" (distribution {info.distribution!r})" if info.distribution else ""
                    info.error = f"plugin {plugin_name!r}{where} failed in register_operators: {type(exc).__name__}: {exc}"
                    info.error_traceback = traceback.format_exc()  # type: ignore[attr-defined]
                    warnings.warn(info.error, RuntimeWarning, stacklevel=4)
                    continue
                for name, cls in mine.items():
                    ops[name] = cls
                    owner[name] = plugin_name
                    if plugin_name in self.infos:
                        self.infos[plugin_name].operators.append(name)
            self.ops, self.op_owner = ops, owner
            self.ops_stale = False


_REGISTRY = _Registry()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide PluginManager, with installed plugins loaded."""
    _REGISTRY.ensure_loaded()
    return _REGISTRY.pm


def operators() -> Mapping[str, type[Operator]]:
    """Read-only mapping of type name → operator class, over every loaded plugin."""
    _REGISTRY.collect()
    return MappingProxyType(_REGISTRY.ops)


def plugins() -> list[PluginInfo]:
    """Every plugin seen (loaded or failed), core first."""
    _REGISTRY.collect()
    return list(_REGISTRY.infos.values())


def get_operator(type_name: str, distribution: str | None = None, trust_code: bool | None = None) -> type[Operator]:
    """The operator class registered as ``type_name``.

    Raises PluginNotInstalled (with the pip distribution to install) for a known plugin's
    operator, or OperatorNotFound listing what is installed. ``module:QualName`` names (user
    operators that no plugin registers) resolve without importing anything when the module is
    already imported or is part of ``funnel`` itself; importing any other module needs
    ``trust_code=True`` (or ``FUNNEL_TRUST_CODE=1``): a graph file alone never runs code.
    ``distribution`` is a hint recorded in exports for third-party operators.
    """
    ops = operators()
    if type_name in ops:
        return ops[type_name]
    if ":" in type_name:
        module_name, _, qualname = type_name.partition(":")
        if module_name == "__main__" and "__main__" not in sys.modules:
            raise OperatorNotFound(f"operator {type_name!r} was defined in a script's __main__ and cannot be imported")
        own = module_name == "funnel" or module_name.startswith("funnel.")
        if module_name not in sys.modules and not own and not trust_code_enabled(trust_code):
            raise OperatorNotFound(
                f"operator {type_name!r} is not registered by a plugin, and importing module {module_name!r} "
                "to find it would run code named by the graph file. Refused: pass trust_code=True "
                f"(Ensemble.load(..., trust_code=True) / export(..., trust_code=True)) or set {TRUST_CODE_ENV}=1 "
                "if you trust this graph, or register the operator through a funnel plugin"
            )
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise OperatorNotFound(
                f"operator {type_name!r} is not registered by a plugin and could not be imported "
                f"({type(exc).__name__}: {exc}); make module {module_name!r} importable in this "
                "environment or register the operator through a funnel plugin"
            ) from exc
        if isinstance(obj, type) and issubclass(obj, Operator):
            return obj
        raise OperatorNotFound(f"{type_name!r} is not an Operator subclass")
    namespace = type_name.split(".", 1)[0]
    dist = distribution or KNOWN_DISTRIBUTIONS.get(namespace)
    broken = [i for i in _REGISTRY.infos.values() if i.error and (i.name == namespace or (dist and i.distribution == dist))]
    if dist is None and broken:
        raise OperatorNotFound(
            f"operator {type_name!r} is not available: {broken[0].error}. Fix or reinstall that plugin "
            f"(or leave it out with FUNNEL_LOAD_PLUGINS)"
        )
    if dist is not None:
        failed = broken
        cause = f" (it is installed but failed to load: {failed[0].error})" if failed else ""
        restrict = os.environ.get("FUNNEL_LOAD_PLUGINS")
        if not failed and restrict is not None and _version(dist) is not None:
            raise PluginNotInstalled(
                f"operator {type_name!r} is provided by the plugin distribution {dist!r}, which is installed "
                f"but not loaded: FUNNEL_LOAD_PLUGINS={restrict!r} leaves it out. Add {dist!r} to "
                f"FUNNEL_LOAD_PLUGINS (or unset it); where it is not installed: pip install {dist}",
                distribution=dist,
            )
        raise PluginNotInstalled(
            f"operator {type_name!r} is provided by the plugin distribution {dist!r}, which is not "
            f"loaded{cause}. Install it with: pip install {dist}",
            distribution=dist,
        )
    installed = ", ".join(sorted(ops)) or "none"
    raise OperatorNotFound(f"unknown operator {type_name!r}; installed operators: {installed}")


def record_plugin_error(name: str, message: str) -> None:
    """Record an error of plugin ``name`` (e.g. its register_commands hook raised); ``funnel
    plugins`` reports it. Other plugins are unaffected."""
    _REGISTRY.ensure_loaded()
    with _REGISTRY.lock:
        info = _REGISTRY.infos.setdefault(name, PluginInfo(name))
        info.error = message if not info.error else f"{info.error}; {message}"


def register_plugin(obj: Any, name: str) -> None:
    """Register a plugin object (module or instance with hookimpls) by name — for tests and apps."""
    _REGISTRY.ensure_loaded()
    with _REGISTRY.lock:
        _REGISTRY._register(obj, name, PluginInfo(name))
        _REGISTRY.pm.check_pending()


def unregister_plugin(name: str) -> None:
    """Undo :func:`register_plugin`."""
    with _REGISTRY.lock:
        _REGISTRY.pm.unregister(name=name)
        _REGISTRY.infos.pop(name, None)
        _REGISTRY.ops_stale = True


def reset() -> None:
    """Forget every loaded plugin (the next lookup loads them again). For tests."""
    global _REGISTRY  # noqa: PLW0603
    _REGISTRY = _Registry()
