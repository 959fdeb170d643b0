"""Readable names for cProfile entries: ``os._Environ.__getitem__`` instead of
``<frozen os>:674(__getitem__)``, ``bytes.decode`` instead of
``~:0(<method 'decode' of 'bytes' objects>)``."""

from __future__ import annotations

import inspect
import os
import re
import sys
import sysconfig
import types
from typing import Any

_METHOD = re.compile(r"<method '(\w+)' of '([\w.]+)' objects>")
_BUILTIN = re.compile(r"<built-in method (?:builtins\.)?([\w.]+)>")
_FROZEN = re.compile(r"<frozen ([\w.]+)>")


def readable_name(filename: str, line: int, func: str) -> str:
    """:returns: the dotted name of the function cProfile saw at ``filename:line``:
    module, class and function (``kloudless.client.Client.request``)."""
    if filename == "~":  # a built-in
        method = _METHOD.fullmatch(func)
        if method:
            return f"{method.group(2)}.{method.group(1)}"
        builtin = _BUILTIN.fullmatch(func)
        return builtin.group(1) if builtin else func.strip("<>")
    frozen = _FROZEN.fullmatch(filename)
    module = frozen.group(1) if frozen else module_of(filename)
    if not module:
        return f"{os.path.basename(filename)}:{line} {func}"
    return f"{module}.{qualified_name(module, line, func)}"


def module_of(filename: str) -> str:
    """:returns: the dotted module name of a source file on ``sys.path`` ('' when it is on
    none)."""
    path = os.path.abspath(filename)
    roots = [sysconfig.get_paths()["stdlib"], *sys.path]
    best = ""
    for root in roots:
        root = os.path.abspath(root or os.curdir)
        if path.startswith(root + os.sep) and len(root) > len(best):
            best = root
    if not best:
        return ""
    relative = os.path.splitext(os.path.relpath(path, best))[0]
    parts = relative.split(os.sep)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def qualified_name(module: str, line: int, func: str) -> str:
    """:returns: ``Class.method`` for the function named ``func`` that starts at ``line`` of
    an imported ``module`` (``func`` when it is not found: nested functions, lambdas)."""
    namespace = sys.modules.get(module)
    if namespace is None:
        return func
    for name, obj in _functions(namespace):
        code = getattr(obj, "__code__", None)
        if code is not None and code.co_name == func and code.co_firstlineno == line:
            return name
    return func


def _functions(module: types.ModuleType) -> list[tuple[str, Any]]:
    """The module's functions and its classes' methods, with their qualified names."""
    found: list[tuple[str, Any]] = []
    for name, obj in vars(module).items():
        if inspect.isfunction(obj):
            found.append((name, obj))
        elif inspect.isclass(obj) and obj.__module__ == module.__name__:
            for attr, member in vars(obj).items():
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                elif isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    found.append((f"{name}.{attr}", member))
    return found
