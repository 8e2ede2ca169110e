"""Several devices: training and k-means under tf.distribute.MirroredStrategy on 2 logical CPUs.

Logical devices must be configured before TensorFlow starts, so the checks
run in a fresh process. They compare, in that process, a strategy run with a
one-device run on the same data and seed:

* `KMeans(distribute=strategy)` from the same initial centroids: the same
  assignment for every point and centroids equal within 1e-4 (the sums are
  all-reduced in float32 from two halves instead of one pass: rounding only);
* a whole growth (model built and compiled in `strategy.scope()`, grown by
  `LayerwiseTrainer`, k-means on both replicas): the per-replica gradients
  are summed in another order, so the runs are not bit-identical; both must
  reach test accuracy >= 0.98 and stage-1 purity >= 0.98, within 0.02 of
  each other, and the distributed model's variables must be mirrored on both
  devices.
"""

import json
import os


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import contextlib
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import layerwise_keras as lk
from layerwise_keras import datasets
from layerwise_keras.runs.config import load_config
from layerwise_keras.runs.pipeline import load_splits

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}

rng = np.random.default_rng(0)
points = np.concatenate([rng.normal(c, 1.0, size=(3001, 8)) for c in range(6)]).astype(np.float32)
init = points[rng.choice(len(points), 6, replace=False)]
one = lk.KMeans(6, init=init, max_iter=20, tol=0, max_points_per_centroid=None, batch_size=4096).fit(points)
two = lk.KMeans(6, init=init, max_iter=20, tol=0, max_points_per_centroid=None, batch_size=4096,
                distribute=strategy).fit(points)
out["kmeans_same_assignment"] = float(np.mean(one.predict(points) == two.predict(points)))
out["kmeans_max_centroid_diff"] = float(np.abs(one.cluster_centers_ - two.cluster_centers_).max())
out["kmeans_inertia_rel_diff"] = abs(one.inertia_ - two.inertia_) / one.inertia_

config = load_config("hierarchical_2level")
splits = load_splits(config["dataset"], seed=0)
stages = [lk.Stage.from_config(s) for s in config["stages"]]
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def grow(distributed):
    keras.utils.set_random_seed(0)
    trainer = lk.LayerwiseTrainer(stages, splits["num_classes"], kmeans_data=splits["x_train"], seed=0, verbose=0)
    with strategy.scope() if distributed else contextlib.nullcontext():
        model = lk.input_model(splits["x_train"].shape[1:])
        model.compile(keras.optimizers.Adam(0.003), loss, metrics=["accuracy"])
        trainer.begin(model)
    data = datasets.from_arrays(splits["x_train"], splits["y_train"], batch_size=64, shuffle=True, seed=0)
    model.fit(data, epochs=trainer.total_epochs, callbacks=[trainer], verbose=0)
    accuracy = float((model.predict(splits["x_test"], verbose=0).argmax(-1) == splits["y_test"]).mean())
    purity = lk.stage_purities(lk.assignments(model, splits["x_test"]), splits["latents_test"])
    mirrored = all(isinstance(v.value, tf.distribute.DistributedValues) or hasattr(v.value, "values")
                   for v in model.weights) if distributed else None
    return accuracy, [float(p) for p in purity], mirrored


out["one_device"] = grow(False)
out["mirrored"] = grow(True)
print(json.dumps(out))
"""


def test_mirrored_strategy_training_and_kmeans_match_one_device(fresh_python):
    result = fresh_python(SCRIPT, ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["kmeans_same_assignment"] == 1.0
    assert out["kmeans_max_centroid_diff"] <= 1e-4
    assert out["kmeans_inertia_rel_diff"] <= 1e-6
    (acc_1, purity_1, _), (acc_2, purity_2, mirrored) = out["one_device"], out["mirrored"]
    assert min(acc_1, acc_2) >= 0.98 and abs(acc_1 - acc_2) <= 0.02
    assert min(purity_1[0], purity_2[0]) >= 0.98
    assert mirrored is True
