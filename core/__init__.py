"""inrkit: compact sinusoidal implicit neural representations.

The network is ``f(x) = L(S(D(x)))``: an input layer of sines with frozen
integer-lattice frequencies, bounded sine hidden layer(s) and a linear head
(see the README and ``METHOD.md``). This package is the domain-agnostic core;
signal types (audio, image, SDF) are plugins.

Importing :mod:`inrkit` is cheap: submodules that need torch are imported on
first use.
"""

from importlib import import_module as _import_module

__version__ = "0.1.0"

_LAZY = {
    "InrkitError": "inrkit.errors",
    "InputError": "inrkit.errors",
    "Signal": "inrkit.signal",
    "Batch": "inrkit.signal",
    "ModelConfig": "inrkit.config",
    "TrainConfig": "inrkit.config",
    "SinusoidalINR": "inrkit.model",
    "build_model": "inrkit.model",
    "fit": "inrkit.train",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(_import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'inrkit' has no attribute {name!r}")
