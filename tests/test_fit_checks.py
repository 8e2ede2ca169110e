"""Mistakes caught when `fit` starts, before the first batch: labels, losses, shapes, `kmeans_data`, empty data.

Every bad input gets its exception type and a message that names the
problem; a counting callback proves that no training batch ran.
"""

import warnings

import keras
import numpy as np
import pytest

import layerwise_keras as lk
from layerwise_keras.datasets import hierarchical_digits
from layerwise_keras.datasets.checks import InputRangeWarning
from layerwise_keras.growth.fit_checks import label_format, logits_loss


class BatchCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.batches += 1


@pytest.fixture(scope="module")
def digits_small():
    images, labels, _ = hierarchical_digits(240, seed=5)
    return images, labels


STAGES = [lk.Stage(8, 3, strides=3, clusters=8, epochs=1), lk.Stage(16, 3, strides=3, epochs=1)]


def _grow(x, y, loss="sparse_categorical_crossentropy", stages=STAGES, kmeans_data=None, input_shape=None,
          **fit_kwargs):
    trainer = lk.LayerwiseTrainer(stages, 10, kmeans_data=x if kmeans_data is None else kmeans_data, verbose=0)
    model = lk.input_model(input_shape or np.shape(x)[1:])
    model.compile("adam", loss, metrics=["accuracy"])
    counter = BatchCounter()
    model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer, counter], verbose=0, **fit_kwargs)
    return trainer, model, counter


@pytest.mark.parametrize("make_labels, match", [
    (lambda y: np.array([f"digit{v}" for v in y]), r"`y` holds strings \(e\.g\. \['digit"),
    (lambda y: np.where(np.arange(len(y)) == 7, 10, y), r"`y` must be class ids in 0\.\.9 \(10 classes\), got max 10"),
    (lambda y: np.where(np.arange(len(y)) == 7, -1, y), r"`y` must be >= 0, got min -1"),
    (lambda y: y + 0.5, r"`y` must hold whole numbers"),
    (lambda y: y[:-1], r"`y` has 239 entries but there are 240 images"),
    (lambda y: keras.utils.to_categorical(y, 10), r"looks one-hot .*loss='categorical_crossentropy'"),
], ids=["strings", "equal_to_num_classes", "negative", "fractional", "too_few", "one_hot_with_sparse_loss"])
def test_bad_labels_are_refused_before_the_first_batch(digits_small, make_labels, match):
    x, y = digits_small
    counter = BatchCounter()
    trainer = lk.LayerwiseTrainer(STAGES, 10, kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=match):
        model.fit(x, make_labels(y), epochs=trainer.total_epochs, callbacks=[trainer, counter], verbose=0)
    assert counter.batches == 0
    assert trainer.grown_stages(model) == 0  # stage 1 was not even added


def test_bad_validation_labels_name_validation_data(digits_small):
    x, y = digits_small
    counter = BatchCounter()
    trainer = lk.LayerwiseTrainer(STAGES, 10, kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"`labels of validation_data` must be class ids in 0\.\.9"):
        model.fit(x, y, epochs=trainer.total_epochs, validation_data=(x[:20], y[:20] + 10),
                  callbacks=[trainer, counter], verbose=0)
    assert counter.batches == 0


def test_class_ids_with_a_categorical_loss_are_refused(digits_small):
    x, y = digits_small
    trainer = lk.LayerwiseTrainer(STAGES, 10, kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"wants one-hot labels \[n, 10\].*to_categorical"):
        model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)


def test_a_probability_loss_object_is_refused_with_the_fix(digits_small):
    x, y = digits_small
    trainer = lk.LayerwiseTrainer(STAGES, 10, kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy())
    counter = BatchCounter()
    with pytest.raises(ValueError, match=r"expects probabilities \(from_logits=False\).*"
                                         r"SparseCategoricalCrossentropy\(from_logits=True\)"):
        model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer, counter], verbose=0)
    assert counter.batches == 0


def _history(x, y, loss, seed=0):
    keras.utils.set_random_seed(seed)
    trainer = lk.LayerwiseTrainer(STAGES, 10, kmeans_data=x, verbose=0, seed=seed)
    model = lk.input_model(x.shape[1:])
    model.compile(keras.optimizers.Adam(0.003), loss)
    history = model.fit(x, y, batch_size=40, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0, shuffle=False)
    return model, history.history["loss"]


@pytest.mark.parametrize("name, labels", [("sparse_categorical_crossentropy", "ids"),
                                          ("categorical_crossentropy", "one_hot")])
def test_a_string_loss_is_compiled_on_logits(digits_small, name, labels):
    """The string name trains exactly as the explicit from_logits=True loss does (same process, same seeds)."""
    x, y = digits_small
    y_fit = keras.utils.to_categorical(y, 10) if labels == "one_hot" else y
    explicit = getattr(keras.losses, "SparseCategoricalCrossentropy" if labels == "ids" else
                       "CategoricalCrossentropy")(from_logits=True)
    model, by_name = _history(x, y_fit, name)
    _, by_object = _history(x, y_fit, explicit)
    assert model.loss.get_config()["from_logits"] is True
    np.testing.assert_allclose(by_name, by_object, rtol=1e-5)


def test_label_format_and_logits_loss_read_the_loss():
    assert label_format("categorical_crossentropy") == "one_hot"
    assert label_format(keras.losses.SparseCategoricalCrossentropy(from_logits=True)) == "sparse"
    assert label_format("mse") is None
    assert logits_loss("mse") == ("mse", False)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    assert logits_loss(loss) == (loss, False)
    with pytest.raises(ValueError, match="from_logits=True"):
        logits_loss(keras.losses.CategoricalCrossentropy())


def test_an_input_too_small_for_a_later_stage_names_the_stage_and_sizes():
    x = np.random.default_rng(0).random((40, 9, 9, 1), dtype="float32")
    y = np.arange(40) % 10
    stages = [lk.Stage(8, 3, strides=3, clusters=4), lk.Stage(8, 5)]
    counter = BatchCounter()
    trainer = lk.LayerwiseTrainer(stages, 10, kmeans_data=x, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"stage 2 of 2 does not fit the 3x3x4 map that reaches it from "
                                         r"\(9, 9, 1\) images \(kernel_size=\(5, 5\)"):
        model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer, counter], verbose=0)
    assert counter.batches == 0


@pytest.mark.parametrize("kmeans_shape, match", [
    ((20, 27, 27, 3), r"`kmeans_data` holds images of shape \(27, 27, 3\), but the model's input is \(27, 27, 1\)"),
    ((20, 18, 18, 1), r"`kmeans_data` holds images of shape \(18, 18, 1\)"),
])
def test_kmeans_data_must_match_the_model_input(digits_small, kmeans_shape, match):
    x, y = digits_small
    kmeans_data = np.random.default_rng(0).random(kmeans_shape, dtype="float32")
    counter = BatchCounter()
    trainer = lk.LayerwiseTrainer(STAGES, 10, kmeans_data=kmeans_data, verbose=0)
    model = lk.input_model(x.shape[1:])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, epochs=trainer.total_epochs, callbacks=[trainer, counter], verbose=0)
    assert counter.batches == 0


def test_images_of_another_shape_than_the_model_and_empty_data_are_refused(digits_small):
    x, y = digits_small
    for images, labels, match in [(x[:, :18, :18], y, r"`x` holds images of shape \(18, 18, 1\), but the model's "
                                                        r"input is \(27, 27, 1\)"),
                                  (x[:0], y[:0], r"`x` is empty \(shape \(0, 27, 27, 1\)\)"),
                                  (x[..., 0], y, r"`x` must be batches of images \[n, height, width, channels\]")]:
        trainer = lk.LayerwiseTrainer(STAGES, 10, kmeans_data=x, verbose=0)
        model = lk.input_model(x.shape[1:])
        model.compile("adam", "sparse_categorical_crossentropy")
        with pytest.raises(ValueError, match=match):
            model.fit(images, labels, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)


def test_raw_uint8_pixels_get_a_warning_and_scaled_images_none(digits_small):
    x, y = digits_small
    raw = np.clip(x * 255, 0, 255).astype("uint8")
    with pytest.warns(InputRangeWarning, match=r"`x` holds uint8 values up to \d+: raw 0\.\.255 pixels.*/ 255"):
        _grow(raw, y, kmeans_data=x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputRangeWarning)
        _grow(x, y)


def test_tf_data_inputs_are_checked_from_their_element_spec_without_being_read(digits_small):
    import tensorflow as tf

    x, y = digits_small
    read = []

    def dataset(images, labels, batch=True):
        def note(a, b):
            read.append(1)
            return a, b
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        ds = ds.map(lambda a, b: tf.py_function(note, [a, b], [a.dtype, b.dtype]))
        ds = ds.map(lambda a, b: (tf.ensure_shape(a, images.shape[1:]), tf.ensure_shape(b, labels.shape[1:])))
        return ds.batch(40) if batch else ds

    cases = [
        (dataset(x, np.array([str(v) for v in y])), r"`x` yields string labels"),
        (dataset(x, y, batch=False), r"must be batched: \.batch"),
        (dataset(x[:, :18, :18], y), r"`x` holds images of shape \(18, 18, 1\)"),
        (dataset(x, keras.utils.to_categorical(y, 10)), r"`x` yields one-hot labels"),
        (tf.data.Dataset.from_tensor_slices((x[:0], y[:0])).batch(40), r"`x` is an empty dataset"),
    ]
    for data, match in cases:
        trainer = lk.LayerwiseTrainer(STAGES, 10, kmeans_data=x, verbose=0)
        model = lk.input_model(x.shape[1:])
        model.compile("adam", "sparse_categorical_crossentropy")
        with pytest.raises(ValueError, match=match):
            model.fit(data, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    assert read == []  # no element was read


def test_a_good_tf_data_growth_still_runs(digits_small):
    import tensorflow as tf

    x, y = digits_small
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(40)
    trainer, model, counter = _grow(data, None, kmeans_data=x, input_shape=x.shape[1:])
    assert trainer.finished and counter.batches == 12


def test_a_python_list_of_class_ids_is_taken_as_labels(digits_small):
    """Plain Keras reads a list as one target per item (an IndexError here); the grown model has one output."""
    x, y = digits_small
    trainer, model, counter = _grow(x, [int(v) for v in y])
    assert trainer.finished and counter.batches > 0
