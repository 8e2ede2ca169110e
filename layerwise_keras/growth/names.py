"""The stage-layer registry: how a stage's layers are named and found again.

Every layer a stage adds is named `stage{n}_{role}` by `layer_name` (roles in
`ROLES`); `stage_layer`, `count_stages` and `clustered_stages` find them again,
on the grown `Sequential` and on its portable form (where each assignment is a
`Dense` layer of the same name, preceded by a `stage{n}_whiten` `Dense` when
the stage whitens) alike; `parse_layer_name` and `mentions_role` read them
back (also in converted graphs). No other module builds or parses these names.
It also names the two growth paths, `TRAINER` and `CACHED`, the way their
messages, errors and warnings begin.
"""

import re

# The growth paths, as their messages name them: the callback inside `fit`, and the cached growth.
TRAINER = "LayerwiseTrainer"
CACHED = "grow_cached"

# What each layer of a stage is; `layer_name(n, role)` names it.
ROLES = ("pool", "conv", "whiten", "assign", "readout_gate", "readout_avgpool", "readout_bn", "readout_bottleneck",
         "readout_hidden", "readout_flatten", "readout_pool", "readout")
_NAME = re.compile(r"^stage([1-9][0-9]*)_(" + "|".join(sorted(ROLES, key=len, reverse=True)) + r")$")


def layer_name(n, role):
    """Returns the name of stage `n`'s (1-based) layer of `role`, e.g. `stage2_conv`.

    Args:
        n: 1-based stage index.
        role: one of `ROLES`.

    Returns:
        A str.

    Example:

    >>> layer_name(1, "assign")
    'stage1_assign'
    """
    if role not in ROLES:
        raise ValueError(f"layer_name: role must be one of {ROLES}, got {role!r}.")
    return f"stage{int(n)}_{role}"


def parse_layer_name(name):
    """Returns `(n, role)` for a stage layer's name, or None for any other name.

    Args:
        name: a layer name.

    Returns:
        `(int, str)` or None.

    Example:

    >>> parse_layer_name("stage2_readout_pool")
    (2, 'readout_pool')
    """
    match = _NAME.match(str(name))
    return (int(match.group(1)), match.group(2)) if match else None


def mentions_role(text, role):
    """Whether an op or tensor name of a converted graph (e.g. `model/stage1_assign/MatMul`) comes from a stage layer of `role`.

    Example:

    >>> mentions_role("portable/stage1_assign/MatMul;portable/stage1_assign/BiasAdd", "assign")
    True
    """
    if role not in ROLES:
        raise ValueError(f"mentions_role: role must be one of {ROLES}, got {role!r}.")
    return re.search(r"(?<![A-Za-z0-9])stage[1-9][0-9]*_" + role + r"(?![A-Za-z])", str(text)) is not None


def stage_layer(model, n, role, required=True):
    """Returns stage `n`'s layer of `role` in a grown (or portable) model.

    Args:
        model: a Keras model.
        n: 1-based stage index.
        role: one of `ROLES`.
        required: raise if the layer is missing (else return None).

    Returns:
        The layer, or None.

    Example:

    `model`: a grown model of three stages, two of them clustered.

    >>> stage_layer(model, 1, "conv").name
    'stage1_conv'
    >>> stage_layer(model, 3, "assign", required=False) is None  # the last stage has no assignment
    True
    """
    name = layer_name(n, role)
    for layer in model.layers:
        if layer.name == name:
            return layer
    if required:
        raise ValueError(f"model '{model.name}' has no layer {name} (stage {n}'s {role}).")
    return None


def _roles(model):
    return [r for r in (parse_layer_name(layer.name) for layer in model.layers) if r is not None]


def count_stages(model):
    """Returns how many stages a model holds (the last may be in training): its stage convolutions.

    Example:

    >>> from layerwise_keras.growth.builder import grown_model, input_model
    >>> from layerwise_keras.growth.stage import Stage
    >>> count_stages(input_model((9, 9, 1)))
    0
    >>> count_stages(grown_model([Stage(8, clusters=4), Stage(8)], (9, 9, 1), 4))
    2
    """
    return sum(1 for _, role in _roles(model) if role == "conv")


def clustered_stages(model):
    """Returns the sorted 1-based indices of the stages that have a cluster assignment.

    Example:

    >>> from layerwise_keras.growth.builder import grown_model
    >>> from layerwise_keras.growth.stage import Stage
    >>> clustered_stages(grown_model([Stage(8, clusters=4), Stage(8)], (9, 9, 1), 4))
    [1]
    """
    return sorted(n for n, role in _roles(model) if role == "assign")
