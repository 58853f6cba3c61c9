"""Lazy package namespaces (PEP 562): ``from evdet.data import SequenceBatch`` imports ``evdet.data.batch``
on first use only, so that importing a light submodule (``evdet.data.config``, ``evdet.training.config``)
or a command's ``--help`` never loads torch, Lightning or numba.

A package ``__init__`` lists its public names and the submodule defining each::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"SequenceBatch": "batch", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Module ``__getattr__``, ``__dir__`` and ``__all__`` for ``package`` whose public name ``n`` lives
    in the submodule ``package.exports[n]`` (or the absolute module ``exports[n]`` when it starts with
    ``evdet.``, for re-exports); a name is imported on first access and then cached in the package
    namespace."""
    exports = dict(exports)

    def __getattr__(name: str) -> Any:
        sub = exports.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = sub if sub.startswith("evdet.") else f"{package}.{sub}"
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__, sorted(exports)
