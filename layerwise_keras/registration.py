"""Registers the toolkit's serializable Keras classes as soon as both it and Keras are imported.

`keras.saving.load_model` finds a custom class only when the module that
registers it has been imported. The top level of `layerwise_keras` is lazy
(so that `layerwise-keras --help` and argument errors answer without
importing TensorFlow), so it registers its classes here instead:

* if `keras` is already imported, at once;
* otherwise when `keras` is imported, by a one-shot import hook that runs
  the registration right after the `keras` package has executed.

Either way, after `import layerwise_keras` (in any order with `import keras`)
every `.keras` file the toolkit writes loads with a plain
`keras.saving.load_model(path)`, whatever subpackages were touched before.

Example:

>>> import layerwise_keras, keras
>>> "layerwise_keras>LayerwiseSequential" in keras.saving.get_custom_objects()
True
"""

import importlib
import importlib.abc
import importlib.util
import sys

# The modules whose import registers a serializable class (`@keras.saving.register_keras_serializable`).
# Each imports nothing of this package but its (lazy) parent package and the table of stage kinds
# (`growth.kinds`, which imports no Keras), so importing it never makes a cycle.
SERIALIZABLE_MODULES = ("layerwise_keras.growth.layers", "layerwise_keras.growth.sequential")


def register_serializables():
    """Imports every module in `SERIALIZABLE_MODULES` (registering their classes); idempotent.

    Returns:
        The names the classes are registered under (`"layerwise_keras>Name"`).

    Example:

    >>> sorted(register_serializables())
    ['layerwise_keras>ClusterAssignment', 'layerwise_keras>CodeGate', 'layerwise_keras>LayerwiseSequential']
    """
    for module in SERIALIZABLE_MODULES:
        loaded = sys.modules.get(module)
        if loaded is None or not getattr(loaded.__spec__, "_initializing", False):
            # (A module still initializing -- the one whose `import keras` ran the hook -- registers its classes
            # itself as its class statements run.)
            importlib.import_module(module)
    import keras

    return [name for name in keras.saving.get_custom_objects() if name.startswith("layerwise_keras>")]


class _RegisteringLoader(importlib.abc.Loader):
    """Wraps the `keras` package's loader: executes it, then registers our classes."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        register_serializables()

    def __getattr__(self, name):  # get_resource_reader, is_package, get_filename, ... of the real loader
        return getattr(self._loader, name)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """A one-shot `sys.meta_path` finder: finds `keras` as usual and wraps its loader."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        uninstall_hook()
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


_HOOK = _KerasImportHook()


def uninstall_hook():
    """Removes the import hook if it is still installed (it removes itself when `keras` is imported)."""
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def install():
    """Registers now if `keras` is imported, else installs the one-shot hook; called by `import layerwise_keras`."""
    keras = sys.modules.get("keras")
    if keras is not None and getattr(getattr(keras, "__spec__", None), "_initializing", False) is False:
        register_serializables()
    elif keras is None and _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)
