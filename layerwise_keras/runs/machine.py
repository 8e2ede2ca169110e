"""A record of the machine and library versions, for `metrics.json` and benchmark results.
"""

import os
import platform

import keras


def machine_info():
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
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__ if tf is not None else None,
        "keras": keras.__version__,
        "backend": backend,
        "gpus": gpus,
    }
