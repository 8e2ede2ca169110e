"""A record of the machine and library versions, for `metrics.json` and benchmark results.
"""

import os
import platform

import keras


def cpu_model():
    """The CPU's model name.

    Returns:
        The `model name` line of `/proc/cpuinfo` (Linux), else what `platform` says (`"x86_64"`, `"arm"`, ...).

    Example:

    >>> isinstance(cpu_model(), str)
    True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info():
    """The machine and library versions a figure was measured with.

    Returns:
        A JSON-ready dict: platform, processor (architecture), cpu_model, cpu_count, python, tensorflow (None
        without it), keras, backend and the names of the GPUs the backend sees.

    Example:

    >>> sorted(machine_info())[:3]
    ['backend', 'cpu_count', 'cpu_model']
    """
    backend = keras.backend.backend()
    try:
        import tensorflow as tf
    except ImportError:  # a JAX/PyTorch-only install
        tf = None
    if backend == "jax":
        import jax

        gpus = [str(d.device_kind) for d in jax.devices() if d.platform == "gpu"]
    elif tf is not None:
        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    else:
        gpus = []
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__ if tf is not None else None,
        "keras": keras.__version__,
        "backend": backend,
        "gpus": gpus,
    }
