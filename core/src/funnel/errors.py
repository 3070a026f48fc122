"""funnel's exception hierarchy: every message says what, where, and what to do."""

from __future__ import annotations


class FunnelError(Exception):
    """Base class of every error funnel raises on purpose."""


class SchemaError(FunnelError, ValueError):
    """A column is missing, has the wrong dtype or shape, while building or running a graph."""


class OperatorNotFound(FunnelError, LookupError):
    """An operator type name is not known to any installed plugin."""


class PluginNotInstalled(OperatorNotFound, ImportError):
    """An operator belongs to a known plugin distribution that is not installed."""

    def __init__(self, message: str, distribution: str | None = None) -> None:
        super().__init__(message)
        self.distribution = distribution


def operator_missing(type_name: str, dist: str | None, broken: str | None, known: list[str],
                     left_out: str | None) -> OperatorNotFound:
    """The registry's error for an unknown ``type_name``: ``dist`` provides it (if known), ``broken`` is that
    plugin's load error, ``left_out`` the ``FUNNEL_LOAD_PLUGINS`` that left an installed ``dist`` out."""
    if dist is None and broken:
        return OperatorNotFound(f"operator {type_name!r} is not available: {broken}. Fix or reinstall that plugin "
                                "(or leave it out with FUNNEL_LOAD_PLUGINS)")
    if dist is None:
        return OperatorNotFound(f"unknown operator {type_name!r}; installed operators: {', '.join(known) or 'none'}")
    provided = f"operator {type_name!r} is provided by the plugin distribution {dist!r}, which is"
    if left_out is not None:
        return PluginNotInstalled(f"{provided} installed but not loaded: FUNNEL_LOAD_PLUGINS={left_out!r} leaves it "
                                  f"out. Add {dist!r} to FUNNEL_LOAD_PLUGINS (or unset it); where it is not "
                                  f"installed: pip install {dist}", distribution=dist)
    cause = f" (it is installed but failed to load: {broken})" if broken else ""
    return PluginNotInstalled(f"{provided} not loaded{cause}. Install it with: pip install {dist}", distribution=dist)


class OperatorError(FunnelError, RuntimeError):
    """An operator raised while transforming a batch; the message names the operator."""


class ExportError(FunnelError):
    """Writing or reading an exported model repository failed."""


class ArtifactError(FunnelError):
    """An operator's artifact (index file, SavedModel, ...) is missing or unreadable."""


class RequestError(FunnelError, ValueError):
    """A request to a served or in-process graph is malformed (missing input, bad dtype...)."""


class ServerError(FunnelError, RuntimeError):
    """The Triton server could not be found, started, or did not become ready."""
