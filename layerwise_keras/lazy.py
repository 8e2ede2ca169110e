"""Package attributes that load on first access, as Keras' own top level does.

`layerwise_keras`, `layerwise_keras.growth` and `layerwise_keras.runs` name
their public objects and import the module that defines one only when it is
first used, so that importing a package (the command line, the
registration of the Keras classes) imports no TensorFlow.
"""

import importlib


def lazy_attributes(package, exports, submodules=()):
    """Returns a package's module-level `__getattr__` and `__dir__` that import on first access.

    Args:
        package: the package's `__name__`.
        exports: dict of public name -> the module defining it, absolute
            (`"layerwise_keras.growth.stage"`) or relative to `package`
            (`"stage"`).
        submodules: names of submodules that are attributes too (`lk.datasets`).

    Returns:
        `(__getattr__, __dir__)`; the package assigns both at module level.

    Example:

    >>> getattr_, dir_ = lazy_attributes("layerwise_keras.growth", {"Stage": "stage"})
    >>> getattr_("Stage").__name__
    'Stage'
    """
    names = sorted(exports) + list(submodules)

    def __getattr__(name):
        if name in exports:
            module = exports[name] if exports[name].startswith("layerwise_keras") else f"{package}.{exports[name]}"
            value = getattr(importlib.import_module(module), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(importlib.import_module(package), name, value)  # later lookups skip __getattr__
        return value

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return __getattr__, __dir__
