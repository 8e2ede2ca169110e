"""`LayerwiseSequential`: the `keras.Sequential` a `LayerwiseTrainer` grows.

It imports nothing but Keras and NumPy, so `registration` can import it (registering
the class for `keras.saving.load_model`) at any point of an import.
"""

import numbers

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="layerwise_keras")
class LayerwiseSequential(keras.Sequential):
    """The `keras.Sequential` a `LayerwiseTrainer` grows (what `input_model` returns).

    It is a plain `Sequential` with two additions:

    * `fit` first lets each callback that has a `before_fit(model, fit_args)`
      method (the `LayerwiseTrainer`) check `fit`'s arguments and prepare
      the model. The JAX and PyTorch trainers build the model from a data
      batch before any callback runs, which fails on a model holding only
      its `keras.Input`; adding stage 1 before `fit` makes the same user code
      grow a model on every backend, and checking first makes a bad label,
      shape or callback an error before the first epoch, not after stage 1.
    * `summary()` of the empty model says how to see the planned network
      (`LayerwiseTrainer.planned_model(input_shape).summary()`).

    Example (`x`, `y`: 128 images 27x27x1 and their labels, 10 classes):

    >>> from layerwise_keras import LayerwiseTrainer, Stage, input_model
    >>> trainer = LayerwiseTrainer([Stage(8, 3, clusters=8), Stage(8, 3)], 10, kmeans_data=x, verbose=0)
    >>> model = input_model(x.shape[1:])
    >>> type(model).__name__, model.layers
    ('LayerwiseSequential', [])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    >>> history = model.fit(x, y.tolist(), epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    >>> [layer.name for layer in model.layers]
    ['stage1_conv', 'stage1_assign', 'stage2_conv', 'stage2_readout_flatten', 'stage2_readout']
    """

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, **kwargs):
        if isinstance(y, (list, tuple)) and y and all(isinstance(v, numbers.Number) for v in y):
            y = np.asarray(y)  # a list of class ids (plain Keras would read it as one target per list item)
        fit_args = dict(kwargs, x=x, y=y, batch_size=batch_size, epochs=epochs, callbacks=list(callbacks or ()))
        for callback in list(fit_args["callbacks"]):
            before_fit = getattr(callback, "before_fit", None)
            if callable(before_fit):
                before_fit(self, fit_args)  # may reorder fit_args["callbacks"]
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                           callbacks=fit_args["callbacks"], **kwargs)

    def summary(self, *args, **kwargs):
        if not self.layers:
            print(f"Model {self.name!r} holds only its input until `fit` grows it; to see the planned network "
                  "(every stage's layers and shapes), call trainer.planned_model(input_shape).summary().")
        return super().summary(*args, **kwargs)
