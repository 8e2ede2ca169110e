"""`LayerwiseSequential`: the `keras.Sequential` a `LayerwiseTrainer` grows.

It imports nothing but Keras, so `registration` can import it (registering
the class for `keras.saving.load_model`) at any point of an import.
"""

import keras


@keras.saving.register_keras_serializable(package="layerwise_keras")
class LayerwiseSequential(keras.Sequential):
    """The `keras.Sequential` a `LayerwiseTrainer` grows (what `input_model` returns).

    It is a plain `Sequential` with one addition: `fit` first lets each
    callback that has a `before_fit(model)` method (the `LayerwiseTrainer`)
    prepare the model. The JAX and PyTorch trainers build the model from a
    data batch before any callback runs, which fails on a model holding only
    its `keras.Input`; adding stage 1 before `fit` makes the same user code
    grow a model on every backend.

    Example:

    >>> model = input_model((27, 27, 1))
    >>> model.compile(...)
    >>> model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer])
    """

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, **kwargs):
        for callback in callbacks or ():
            before_fit = getattr(callback, "before_fit", None)
            if callable(before_fit):
                before_fit(self)
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                           **kwargs)
