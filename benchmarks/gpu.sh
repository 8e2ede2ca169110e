#!/usr/bin/env bash
# The GPU benchmarks, prepared for a lent GPU machine (Keras 3 on JAX; that image has no TensorFlow).
#
# The device tool carries at most 64 MiB per call, so CIFAR-10 travels in two packed parts
# (benchmarks/gpu_data.py) over two calls back to back; /tmp survives between calls on a warm machine.
#
#   here:   python benchmarks/gpu_data.py pack ../shared/data/cifar10 .gpu_data --parts 2
#           (and the keras, namex, optree wheels for Python 3.12 in .whl/, see the device README)
#   call 1: carry .whl .gpu_data1:  bash benchmarks/gpu.sh kmeans   (installs Keras, stores part 1,
#           smoke-tests a small growth, runs benchmarks/kmeans_gpu.py)
#   call 2: carry .gpu_data2:       bash benchmarks/gpu.sh cifar cifar10_paper   (unpacks CIFAR-10 with
#           SHA-256 checks, runs benchmarks/cifar10.py: the config grown layer by layer, then its
#           end-to-end baseline)
#   call 3:                         bash benchmarks/gpu.sh cifar cifar10_best
#   (a config that caches its stage inputs runs as its uncached copy <config>_uncached: caching is TensorFlow-only)
#
# Results go to $OUT (or benchmarks/results when OUT is unset); copy them into benchmarks/results/.
# Set BENCH_COMMIT to the commit the tree was copied from (the copy has no .git).
set -u
out=${OUT:-benchmarks/results}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
py=${PYTHON:-python3}

case "${1:-}" in
kmeans)
    if ls .whl/*.whl >/dev/null 2>&1; then
        $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    fi
    mkdir -p /tmp/cifar_parts && cp .gpu_data1/part /tmp/cifar_parts/part1 || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $py - <<'EOF' || exit 1
import time, keras, jax
from layerwise_keras.runs.config import load_config
from layerwise_keras.runs.pipeline import grow, load_splits
print("devices", jax.devices(), "backend", keras.backend.backend())
config = load_config("hierarchical_digits")
config["dataset"].update(train=1000, val=200, test=200)
start = time.perf_counter()
_, figures = grow(config, load_splits(config["dataset"]), verbose=0)
print("smoke growth: test accuracy", figures["test_accuracy"], "in", round(time.perf_counter() - start, 1), "s")
EOF
    timeout 240 $py benchmarks/kmeans_gpu.py --output "$out"
    ;;
cifar)
    config=${2:?usage: bash benchmarks/gpu.sh cifar CONFIG}
    if [ ! -f /tmp/data/cifar10/test.npz ]; then
        $py benchmarks/gpu_data.py unpack /tmp/data/cifar10 /tmp/cifar_parts/part1 .gpu_data2/part || exit 1
    fi
    # A cached growth is TensorFlow-only: a config that caches runs here as its uncached copy, named
    # <config>_uncached (the same stages, every epoch through the LayerwiseTrainer: another config, labelled so).
    config=$($py - "$config" <<'EOF' || exit 1
import json, sys
from layerwise_keras.runs.config import load_config
from layerwise_keras.runs.variants import uncached_config
config = load_config(sys.argv[1])
if config.get("cache"):
    config = uncached_config(config)
    config.update(name=config["name"] + "_uncached", description="The uncached copy of " + config["name"]
                  + " that benchmarks/gpu.sh runs on JAX (stage-input caching is TensorFlow-only): "
                  + config["description"])
    path = f"/tmp/{config['name']}.json"
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    print(path)
else:
    print(sys.argv[1])
EOF
)
    name=$(basename "$config" .json)
    $py benchmarks/cifar10.py --config "$config" --data-dir /tmp/data --output "$out" 2>&1 \
        | tee "$out/log_$name.txt" | grep -v "^ *[0-9]*/[0-9]* "
    ;;
*)
    echo "usage: bash benchmarks/gpu.sh kmeans | cifar CONFIG" >&2
    exit 2
    ;;
esac
