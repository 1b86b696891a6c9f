"""A registry of encoders: ``create_encoder(name, **kwargs)`` and ``list_encoders()``.

Encoders register themselves with :func:`register_encoder`; the built-in ones live in the modules
listed in ``_BUILTIN_MODULES`` and are imported on first use (unconditionally: a renamed module
fails loudly), so importing this module is cheap.

>>> enc = create_encoder("dim32")            # doctest: +SKIP
>>> taps = enc(torch.randn(2, 3, 32, 32))    # doctest: +SKIP
>>> sorted(taps)                             # doctest: +SKIP
['conv', 'fc', 'local', 'y']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from torch import nn

_BUILTIN_MODULES = ("infomax.models.dim", "infomax.models.amdim")
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_loaded = False

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_encoder(name: str) -> Callable[[F], F]:
    """Register an encoder factory (a class or a function returning an ``nn.Module``)."""

    def decorator(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"an encoder named {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    for module_name in _BUILTIN_MODULES:  # a missing built-in module is a bug: no try/except
        importlib.import_module(module_name)
    _loaded = True


def list_encoders() -> list[str]:
    """Names of all registered encoders, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def create_encoder(name: str, **kwargs) -> nn.Module:
    """Build the encoder registered under ``name`` with keyword arguments ``kwargs``.

    Raises:
        ValueError: if no encoder has that name (the message lists the valid names).
    """
    _load_builtins()
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown encoder {name!r}; valid encoders: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name](**kwargs)
