"""Deferred imports, so that ``inrkit --help`` and plugin registration never import torch.

Importing torch takes about as long as a short fit. Commands that only list
or describe things (``inrkit --help``, ``inrkit plugins``) need the plugins'
registrations, not the numerical libraries behind them, so the modules on
that path name torch through :func:`lazy_import`: the real import happens at
the first attribute a function reads (``torch.zeros``, ``torch.Tensor``).
Annotations cost nothing under ``from __future__ import annotations``.

The public facade :mod:`inrkit.plugin` re-exports its names through
:func:`reexport` for the same reason: ``from inrkit.plugin import SignalType``
imports the module that defines ``SignalType`` and nothing else.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping


#: Attributes that tools probe on any object (inspect, doctest, importlib); reading them must not import torch.
_INTROSPECTION = frozenset({"__wrapped__", "__test__", "__path__", "__file__", "__all__", "__origin__"})


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is read; then each attribute read is cached."""

    def __getattr__(self, attribute: str):
        if attribute in _INTROSPECTION:
            raise AttributeError(attribute)
        value = getattr(importlib.import_module(self.__name__), attribute)
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        loaded = "imported" if self.__name__ in sys.modules else "not imported yet"
        return f"<deferred module {self.__name__!r} ({loaded})>"


def lazy_import(name: str) -> types.ModuleType:
    """A stand-in for module ``name`` that imports it when first used.

    Use it for heavy libraries at the top of a plugin module, so that
    registering the plugin (for ``inrkit --help``, ``inrkit plugins``) stays
    fast::

        from inrkit.plugin import lazy_import

        torch = lazy_import("torch")

        def my_loss(context, batch):
            return torch.mean((context.predict(batch) - batch.target) ** 2)

    Returns the module itself when it is already imported.
    """
    if name in sys.modules:
        return sys.modules[name]
    return _Deferred(name)


def reexport(module: str, homes: Mapping[str, tuple[str, ...]]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """``__getattr__`` and ``__dir__`` for a module that re-exports names from ``homes`` on first use.

    ``homes`` maps each defining module to the names taken from it.
    """
    where = {name: home for home, names in homes.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[module], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
