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
