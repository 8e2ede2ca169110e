"""Copies of a run configuration for another budget or backend: a smoke-sized copy, an uncached copy.

Both take a configuration dict (`runs.config.load_config`) and return a new
one; neither changes its argument.
"""

import copy


def smoke_config(config, train, val, test, shrink=8, max_iter=10):
    """A small, fast copy of a configuration for smoke runs (quick benchmarks, notebooks).

    Same structure (stages, kernels, strides, assignments, data options),
    but one epoch per stage (step and convergence budgets dropped), widths
    and K divided by `shrink` (at least 8),
    at most `max_iter` Lloyd iterations, and the given split sizes. Its
    figures say whether the code runs, not how well the configuration does.

    Args:
        config: a configuration dict (not modified).
        train, val, test: split sizes.
        shrink: divisor for widths and cluster counts.
        max_iter: cap on the k-means iterations per stage.

    Returns:
        A new configuration dict.

    Example:

    >>> from layerwise_keras.runs.config import load_config
    >>> small = smoke_config(load_config("cifar10_paper"), train=2000, val=300, test=500)
    """
    config = copy.deepcopy(config)
    config["dataset"].update(train=int(train), val=int(val), test=int(test))
    for stage in config["stages"]:
        stage["epochs"] = 1
        stage["steps"] = None  # a step budget would override the one epoch (1,000 steps are 250 epochs here)
        if stage.get("patience") is not None:
            stage["patience"] = None
        if stage.get("width") is not None:  # None: a cluster-first stage's patch size
            stage["width"] = max(8, int(stage["width"]) // shrink)
        if stage.get("clusters"):
            stage["clusters"] = max(8, int(stage["clusters"]) // shrink)
            stage.setdefault("kmeans", {})["max_iter"] = int(max_iter)
            if stage.get("q", 1) > 1:
                stage["q"] = max(1, min(int(stage["q"]) // shrink, stage["clusters"]))
    return config


def uncached_config(config):
    """A copy of a configuration that grows every stage through the trainer, without cached stage inputs.

    Drops `cache` and `cache_variants`; the stages are unchanged. Caching is
    TensorFlow-only, so this is the copy another backend runs, and the base of
    short runs where a cache would cost more passes than it saves. Whether the
    copy keeps the config's name is the caller's call.

    Args:
        config: a configuration dict (not modified).

    Returns:
        A new configuration dict.

    Example:

    >>> from layerwise_keras.runs.config import load_config
    >>> plain = uncached_config(load_config("cifar10_best"))
    >>> "cache" in plain
    False
    """
    config = copy.deepcopy(config)
    for key in ("cache", "cache_variants"):
        config.pop(key, None)
    return config
