"""Lazy package exports: a package's public names load their module on first use.

Why: ``import structlm.cli`` must start without torch (the command sets thread policy before torch loads), and a
package ``__init__`` that imports every submodule eagerly would also turn sibling imports into import circles.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package whose name ``n`` lives in module ``exports[n]``.

    Use in a package ``__init__``: ``__getattr__, __dir__ = lazy_exports(__name__, {"Plan": "structlm.plan"})``.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
