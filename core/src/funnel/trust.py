"""Whether code named by a graph file may be imported (``trust_code``), and importing it.

A ``module:QualName`` operator (one no plugin registers) is imported only when the caller opted in
(``trust_code=True`` or ``FUNNEL_TRUST_CODE=1``), the module is already imported, or it is part of
funnel itself: importing it runs code chosen by the file (docs/reliability.md).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from funnel.errors import OperatorNotFound
from funnel.operator import Operator

__all__ = ["TRUST_CODE_ENV", "trust_code_enabled", "import_operator"]

#: environment switch equal to ``trust_code=True`` (Ensemble.load, export, the served runtime)
TRUST_CODE_ENV = "FUNNEL_TRUST_CODE"


def trust_code_enabled(trust_code: bool | None = None) -> bool:
    """``trust_code`` when given, else whether ``FUNNEL_TRUST_CODE`` is ``1``/``true``/``yes``."""
    if trust_code is not None:
        return bool(trust_code)
    return os.environ.get(TRUST_CODE_ENV, "").strip().lower() in ("1", "true", "yes")


def import_operator(type_name: str, trust_code: bool | None = None) -> type[Operator]:
    """The Operator class named ``module:QualName``, imported only when that is allowed."""
    module_name, _, qualname = type_name.partition(":")
    if module_name == "__main__" and "__main__" not in sys.modules:
        raise OperatorNotFound(f"operator {type_name!r} was defined in a script's __main__ and cannot be imported")
    own = module_name == "funnel" or module_name.startswith("funnel.")
    if module_name not in sys.modules and not own and not trust_code_enabled(trust_code):
        raise OperatorNotFound(f"operator {type_name!r} is not registered by a plugin, and importing module "
                               f"{module_name!r} to find it would run code named by the graph file. Refused: pass "
                               "trust_code=True (Ensemble.load(..., trust_code=True) / export(..., trust_code=True)) "
                               f"or set {TRUST_CODE_ENV}=1 if you trust this graph, or register the operator "
                               "through a funnel plugin")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise OperatorNotFound(f"operator {type_name!r} is not registered by a plugin and could not be imported "
                               f"({type(exc).__name__}: {exc}); make module {module_name!r} importable in this "
                               "environment or register the operator through a funnel plugin") from exc
    if isinstance(obj, type) and issubclass(obj, Operator):
        return obj
    raise OperatorNotFound(f"{type_name!r} is not an Operator subclass")
