"""Functions and classes as readable code in a saved workflow, loaded only when trusted.

A lambda or user-defined function is saved as its source text plus what it refers to:
modules it uses (``np`` → ``import numpy as np``), constants (``MINIMUM_SESSION_LENGTH = 2``)
and other user functions (saved the same way). A function importable by module path (a
module-level function of an installed package) is saved as ``module:qualname``. Loading any
of it runs code, so it needs ``trust_code=True`` or ``FUNNEL_TRUST_CODE=1`` in the
environment (for servers); otherwise :class:`UntrustedCodeError` says exactly that.
"""

from __future__ import annotations

import __future__
import ast
import builtins
import contextvars
import dis
import importlib
import inspect
import io
import os
import textwrap
import tokenize
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from funnel.errors import FunnelError

__all__ = [
    "UntrustedCodeError",
    "CodeError",
    "function_to_config",
    "function_from_config",
    "class_to_config",
    "class_from_config",
    "trusting",
    "code_trusted",
    "TRUST_ENV",
]

TRUST_ENV = "FUNNEL_TRUST_CODE"
_TRUST: contextvars.ContextVar[bool | None] = contextvars.ContextVar("funnel_workflow_trust", default=None)
_CONSTANTS = (int, float, str, bool, bytes, type(None))
#: saved functions are compiled with annotations left unevaluated: they name types the namespace lacks
_LAZY_ANNOTATIONS = __future__.annotations.compiler_flag


class CodeError(FunnelError):
    """A function or class cannot be saved as code (no source, unsupported globals)."""


class UntrustedCodeError(FunnelError):
    """Loading a workflow would run code saved in it, and the caller did not opt in."""


def code_trusted() -> bool:
    """The current opt-in: ``trusting(...)`` if set, else ``FUNNEL_TRUST_CODE=1``."""
    value = _TRUST.get()
    if value is not None:
        return value
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


@contextmanager
def trusting(trust: bool | None, where: str = "") -> Iterator[None]:
    """Set the opt-in for code loaded inside the block (``None``: use the environment)."""
    token = _TRUST.set(trust)
    try:
        yield
    finally:
        _TRUST.reset(token)


def _refuse(what: str, where: str) -> UntrustedCodeError:
    return UntrustedCodeError(
        f"{where}: loading {what} runs Python code saved in the workflow; refusing without an opt-in. "
        f"Read the saved code first, then pass Workflow.load(path, trust_code=True) "
        f"(or set {TRUST_ENV}=1 in the server's environment)"
    )


# -- saving --------------------------------------------------------------------------------
def _importable(obj: Any) -> str | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    if not module or module in ("__main__", "builtins") or "<" in qualname:
        return None
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    if target is not obj:
        return None
    # a module found on the test/notebook path is not an installed package: save the source
    spec_file = getattr(importlib.import_module(module), "__file__", "") or ""
    if "site-packages" not in spec_file and "dist-packages" not in spec_file:
        return None
    return f"{module}:{qualname}"


def _all_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _all_names(const)
    return names


def _shape(code: types.CodeType) -> tuple[Any, ...]:
    """What a code object does, ignoring compiler choices that depend on the surrounding
    source (LOAD_METHOD vs LOAD_ATTR in Python 3.11)."""
    rename = {"LOAD_METHOD": "LOAD_ATTR", "LOAD_DEREF": "LOAD_GLOBAL", "LOAD_NAME": "LOAD_GLOBAL"}
    ops = tuple(
        (rename.get(i.opname, i.opname), repr(i.argval))
        for i in dis.get_instructions(code)
        if i.opname not in ("CACHE", "PRECALL", "NOP", "COPY_FREE_VARS", "MAKE_CELL", "PUSH_NULL")
    )
    return ops, code.co_varnames


def _strip_comments(source: str) -> str:
    """``source`` without ``# comments`` (found by the tokenizer, so '#' in strings stays)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source
    lines = source.splitlines(keepends=True)
    for tok in reversed([t for t in tokens if t.type == tokenize.COMMENT]):
        row, col = tok.start
        line = lines[row - 1]
        lines[row - 1] = line[:col].rstrip() + ("\n" if line.endswith("\n") else "")
    return "".join(lines).rstrip()


def _lambda_source(fn: types.FunctionType) -> str:
    """The text of one lambda expression: the longest expression starting at a ``lambda``
    on its first line whose compiled code equals the function's."""
    try:
        lines, _ = inspect.findsource(fn)
    except (OSError, TypeError) as exc:
        raise CodeError(f"cannot read the source of {fn!r}: {exc}; define it in a file or notebook cell") from exc
    target = fn.__code__
    first = target.co_firstlineno - 1
    line = lines[first] if first < len(lines) else ""
    rest = "".join(lines[first + 1:first + 12])
    col = line.find("lambda")
    while col >= 0:
        text = line[col:] + rest
        for end in range(len(text), 6, -1):
            if text[end - 1].isspace():
                continue
            try:
                compiled = compile(text[:end], "<lambda>", "eval")
            except SyntaxError:
                continue
            code = next((c for c in compiled.co_consts if isinstance(c, types.CodeType)), None)
            if code is not None and _shape(code) == _shape(target):
                return _strip_comments(text[:end])
        col = line.find("lambda", col + 6)
    raise CodeError(f"cannot isolate the source of {fn.__qualname__} ({target.co_filename}:"
                    f"{target.co_firstlineno}); write it as a def function")


def _globals_of(names: set[str], env: dict[str, Any], where: str, seen: set[int]) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    for name in sorted(names):
        if name not in env or hasattr(builtins, name) and env[name] is getattr(builtins, name):
            continue
        value = env[name]
        if isinstance(value, types.ModuleType):
            refs[name] = {"module": value.__name__}
        elif isinstance(value, _CONSTANTS):
            refs[name] = {"constant": value}
        elif isinstance(value, (types.FunctionType, type)):
            if id(value) in seen:
                continue
            refs[name] = function_to_config(value, where, seen) if isinstance(value, types.FunctionType) \
                else class_to_config(value, where, seen)
        else:
            path = _importable(value)
            if path is None:
                raise CodeError(
                    f"{where}: the code refers to global {name!r} of type {type(value).__name__}, which "
                    "cannot be saved as code or data; use a constant (int/float/str), a module or a "
                    "function instead"
                )
            refs[name] = {"import": path}
    return refs


def _signature_names(source: str) -> set[str]:
    """Names the saved ``def``/``lambda`` evaluates when it is defined again at load: decorators and
    default values (``co_names`` holds only the body's names, so ``def f(col, scale=SCALE)`` was
    saved without ``SCALE`` and failed to load with a NameError). Annotations are not evaluated
    at load (a function's source is compiled as with ``from __future__ import annotations``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    node = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))),
                None)
    if node is None:
        return set()
    args = node.args
    parts: list[ast.AST] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    if not isinstance(node, ast.Lambda):
        parts += node.decorator_list
    return {n.id for part in parts for n in ast.walk(part) if isinstance(n, ast.Name)}


def function_to_config(fn: Any, where: str = "workflow", seen: set[int] | None = None) -> dict[str, Any]:
    """Plain data describing ``fn``: ``{"import": "mod:qualname"}`` or its source and globals."""
    seen = set() if seen is None else seen
    seen.add(id(fn))
    path = _importable(fn)
    if path is not None:
        return {"import": path}
    if not isinstance(fn, types.FunctionType):
        raise CodeError(f"{where}: {fn!r} is not a Python function; pass a function or lambda")
    if fn.__name__ == "<lambda>":
        source = _lambda_source(fn)
    else:
        try:
            source = textwrap.dedent(inspect.getsource(fn))
        except (OSError, TypeError) as exc:
            raise CodeError(f"{where}: cannot read the source of {fn.__qualname__}: {exc}") from exc
    names = _all_names(fn.__code__) | _signature_names(source)
    refs = _globals_of(names, fn.__globals__, where, seen)
    if fn.__closure__:
        cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
        refs.update(_globals_of(set(cells), cells, where, seen))
    for d in [*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()]:
        if not isinstance(d, _CONSTANTS):
            raise CodeError(f"{where}: {fn.__qualname__} has a default value of type {type(d).__name__}; "
                            "only constants can be saved")
    return {"source": source, "name": fn.__name__, "globals": refs}


def class_to_config(cls: type, where: str = "workflow", seen: set[int] | None = None) -> dict[str, Any]:
    """Plain data describing a user class: its import path or its source and globals."""
    seen = set() if seen is None else seen
    seen.add(id(cls))
    path = _importable(cls)
    if path is not None:
        return {"import": path}
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError) as exc:
        raise CodeError(
            f"{where}: cannot read the source of class {cls.__qualname__}: {exc}; define it in a file or "
            "notebook cell"
        ) from exc
    names: set[str] = set()
    module_globals: dict[str, Any] = {}
    for value in vars(cls).values():
        fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if isinstance(fn, types.FunctionType):
            names |= _all_names(fn.__code__)
            module_globals = fn.__globals__
    module_globals = module_globals or vars(importlib.import_module(cls.__module__))
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
    names.discard(cls.__name__)
    refs = _globals_of(names, module_globals, where, seen)
    return {"source": source, "name": cls.__name__, "globals": refs}


# -- loading ---------------------------------------------------------------------------------
def _import_path(path: str, where: str) -> Any:
    module, _, qualname = path.partition(":")
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise CodeError(f"{where}: cannot import {path}: {exc}; install the package that defines it") from exc
    return target


def _namespace(refs: dict[str, Any], where: str) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "funnel_workflow.saved_code", "__builtins__": builtins}
    for name, ref in refs.items():
        if "module" in ref:
            ns[name] = importlib.import_module(ref["module"])
        elif "constant" in ref:
            ns[name] = ref["constant"]
        elif "import" in ref:
            ns[name] = _import_path(ref["import"], where)
        else:
            ns[name] = _load_source(ref, where)
    return ns


def _load_source(cfg: Any, where: str) -> Any:
    if not (isinstance(cfg, dict) and isinstance(cfg.get("source"), str) and isinstance(cfg.get("name"), str)):
        got = sorted(cfg) if isinstance(cfg, dict) else type(cfg).__name__
        raise CodeError(
            f"{where}: saved code must be {{'import': 'module:qualname'}} or {{'source': ..., 'name': ..., "
            f"'globals': ...}}, got {got}; the workflow file was edited or written by another version: "
            "save the workflow again"
        )
    ns = _namespace(cfg.get("globals", {}), where)
    source = cfg["source"]
    try:
        if cfg["name"] == "<lambda>":
            return eval(compile(source, f"<saved {where}>", "eval"), ns)  # noqa: S307 - trusted by opt-in
        # a function's annotations stay unevaluated (they name types its saved globals need not hold);
        # a class's are saved with it (its globals are every name in its source)
        flags = 0 if isinstance(ast.parse(source).body[0], ast.ClassDef) else _LAZY_ANNOTATIONS
        exec(compile(source, f"<saved {where}>", "exec", flags), ns)  # noqa: S102 - trusted by opt-in
    except Exception as exc:
        raise CodeError(f"{where}: the saved code of {cfg['name']} failed to load: {type(exc).__name__}: {exc}") \
            from exc
    if cfg["name"] not in ns:
        raise CodeError(f"{where}: the saved code does not define {cfg['name']!r}; the workflow file was edited: "
                        "save the workflow again")
    return ns[cfg["name"]]


def _from_config(kind: str, cfg: Any, where: str) -> Any:
    """What :func:`function_from_config` and :func:`class_from_config` share: the opt-in, then
    the import path or the saved source."""
    name = (cfg.get("import") or cfg.get("name")) if isinstance(cfg, dict) else None
    if not code_trusted():
        raise _refuse(f"{kind} {name}", where)
    if isinstance(cfg, dict) and "import" in cfg:
        return _import_path(cfg["import"], where)
    return _load_source(cfg, where)


def function_from_config(cfg: dict[str, Any], where: str = "workflow") -> Any:
    """Rebuild a function saved by :func:`function_to_config` (needs the opt-in)."""
    return _from_config("function", cfg, where)


def class_from_config(cfg: dict[str, Any], where: str = "workflow") -> type:
    """Rebuild a class saved by :func:`class_to_config` (needs the opt-in)."""
    return _from_config("class", cfg, where)
