"""The table of stage kinds: every way a stage can code, clean, read out and hand on its map, in one place.

A row (`StageKind`) is one kind: the `Stage` fields that select it, a small
network that uses it, its code function (for an assignment), how the portable
export writes it, the LiteRT and ONNX ops it becomes, whether the cached
growth stores its code as int16 cluster ids, the search-space keys that tune
it, and its label in the CIFAR-10 summary. What reads the table:

- `Stage` and `ClusterAssignment` take their assignment names from it
  (`ASSIGNMENTS`), and `ClusterAssignment` computes its code with the row's
  function (`code_function`), as the portable export does;
- the cached growth asks `caches_as_ids`;
- the tuner's search space takes its per-clustered-stage keys, their values
  and their defaults from `KNOBS`;
- the CIFAR-10 summary labels a run's stages with `describe`;
- the tests iterate over `KINDS`: a `.keras` round trip in a fresh process,
  SavedModel / LiteRT / ONNX parity with `litert_ops` and `onnx_ops` in the
  converted graphs, a tuner trial, and cached against uncached growth.

Adding a kind: its layers (`growth.stage_layers`, a custom layer in
`growth.layers` with its portable form in `export.portable`), its `Stage`
field, and a row here; the tests pick the row up.
"""

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class StageKind:
    """One row of the table of stage kinds.

    Args:
        name: the kind's name.
        what: one line saying what it does.
        selects: function of a `Stage`: whether the stage is of this kind.
        example: `Stage` arguments of a small growth for `(12, 12, 1)`
            images and 3 classes that uses this kind (what the tests grow,
            save, export and tune).
        portable: how `export.to_portable_model` writes it (built-in layers).
        litert_ops: LiteRT ops its conversion contains.
        onnx_ops: ONNX op types its conversion contains.
        code: the name of an assignment's code function in `growth.codes`
            (see `code_function`), else None.
        caches_as_ids: the cached growth stores the stage's code as int16
            cluster ids (an exact one-hot code), not float16.
        tuned_by: the search-space keys (`KNOBS`) that tune it.
        label: its label in the CIFAR-10 summary (`{q}` is the stage's q).
    """

    name: str
    what: str
    selects: object
    example: tuple
    portable: str
    litert_ops: frozenset
    onnx_ops: frozenset
    code: object = None
    caches_as_ids: bool = False
    tuned_by: tuple = ()
    label: str = ""


def _assignment(name):
    return lambda stage: stage.clusters is not None and stage.assignment == name


_NEXT = {"width": 8, "kernel_size": 3}  # the stage after a 12x12 first stage of kernel 3: 4x4 -> 1x1
_PATCHES = {"width": None, "kernel_size": 3, "clusters": 6, "cluster": "patches"}
_HEAD = {"readout": "pooled", "pool_size": 2, "bottleneck": 4}

KINDS = (
    StageKind(
        "hard", "the one-hot vector of the nearest centroid (the paper)",
        lambda stage: stage.clusters is not None and (
            stage.assignment == "hard" or (stage.assignment == "nearest" and stage.q == 1)),  # q = 1: hard
        ({"width": 8, "kernel_size": 3, "clusters": 6}, _NEXT),
        "the scores as a frozen Dense, then argmax + one_hot", frozenset({"ARG_MAX", "ONE_HOT"}),
        frozenset({"ArgMax", "OneHot"}), code="hard_code", caches_as_ids=True, tuned_by=("assignment",),
        label="hard"),
    StageKind(
        "nearest", "the multi-hot mask of the q nearest centroids (q = 1 is hard, bit for bit)",
        lambda stage: stage.clusters is not None and stage.assignment == "nearest" and stage.q > 1,
        ({"width": 8, "kernel_size": 3, "clusters": 6, "assignment": "nearest", "q": 2}, _NEXT),
        "the scores as a frozen Dense, then top_k + comparisons + cumsum", frozenset({"TOPK_V2", "CUMSUM"}),
        frozenset({"TopK", "CumSum"}), code="nearest_code", tuned_by=("assignment", "q"), label="{q}-hot"),
    StageKind(
        "soft", "softmax(-‖e - c‖² / temperature) over the centroids", _assignment("soft"),
        ({"width": 8, "kernel_size": 3, "clusters": 6, "assignment": "soft", "temperature": 0.5}, _NEXT),
        "the scores as a frozen Dense, then softmax of the squared distances", frozenset({"SOFTMAX"}),
        frozenset({"Softmax"}), code="soft_code", tuned_by=("assignment",), label="soft"),
    StageKind(
        "triangle", "max(0, mean_k d_k - d_k), d_k the distance to centroid k (Coates, Lee & Ng 2011)",
        _assignment("triangle"),
        ({"width": 8, "kernel_size": 3, "clusters": 6, "assignment": "triangle"}, _NEXT),
        "the scores as a frozen Dense, then sqrt, mean and relu of the distances", frozenset({"SQRT", "MEAN"}),
        frozenset({"Sqrt", "ReduceMean"}), code="triangle_code", tuned_by=("assignment",), label="triangle"),
    StageKind(
        "whitened", "ZCA-whitens the embeddings before k-means; the transform is kept in the assignment",
        lambda stage: stage.clusters is not None and stage.whiten is not None,
        ({"width": 8, "kernel_size": 3, "clusters": 6, "whiten": 1e-2}, _NEXT),
        "a frozen Dense stage{n}_whiten before the scores", frozenset({"FULLY_CONNECTED"}),
        frozenset({"MatMul"}), tuned_by=("whiten",), label="whitened"),
    StageKind(
        "cluster_first", "k-means of the stage's raw (whitened) input patches when it begins; its epochs train "
        "the readout on the code (Thiry et al. 2021, Brutzkus et al. 2022)",
        lambda stage: stage.cluster == "patches",
        (_PATCHES, _NEXT),
        "the patch extraction as a Conv2D with an identity kernel", frozenset({"CONV_2D"}),
        frozenset({"Conv"}), label="cluster-first"),
    StageKind(
        "pooled_head", "average pooling -> BatchNorm -> 1x1 bottleneck -> optional 3x3 hidden conv -> dense",
        lambda stage: stage.readout == "pooled",
        (dict(width=8, kernel_size=3, clusters=6, hidden=4, **_HEAD), dict(_NEXT, readout="pooled", pool_size=1)),
        "built-in layers", frozenset({"AVERAGE_POOL_2D"}), frozenset({"AveragePool"}), label="pooled head"),
    StageKind(
        "global_avg_head", "global average pooling -> dense", lambda stage: stage.readout == "global_avg",
        ({"width": 8, "kernel_size": 3, "clusters": 6}, {"width": 8, "kernel_size": 1, "readout": "global_avg"}),
        "built-in layers", frozenset({"MEAN"}), frozenset({"GlobalAveragePool"}), label="global-average head"),
    StageKind(
        "input_pool", "average-pools the previous stage's code (a histogram per region) before the convolution",
        lambda stage: stage.input_pool is not None,
        ({"width": 8, "kernel_size": 3, "clusters": 6}, {"width": 8, "kernel_size": 1, "input_pool": 2}),
        "AveragePooling2D", frozenset({"AVERAGE_POOL_2D"}), frozenset({"AveragePool"}), label="pooled input"),
    StageKind(
        "bottleneck_handoff", "hands the next stage the head up to its 1x1 bottleneck (frozen) instead of the "
        "code (Brutzkus et al. 2022's stacking)",
        lambda stage: stage.handoff == "bottleneck",
        (dict(_PATCHES, handoff="bottleneck", **_HEAD), {"width": 8, "kernel_size": 1}),
        "built-in layers", frozenset({"AVERAGE_POOL_2D", "CONV_2D"}), frozenset({"AveragePool", "Conv"}),
        label="bottleneck hand-off"),
    StageKind(
        "gate", "the head begins with a CodeGate: the code and C gated channels (m @ A) * (x @ V) of the patch "
        "(Brutzkus et al. 2022's full code)",
        lambda stage: stage.gate is not None,
        (dict(_PATCHES, handoff="bottleneck", gate=4, **_HEAD), {"width": 8, "kernel_size": 1}),
        "Concatenate of the code and Multiply of two bias-free Dense", frozenset({"MUL", "CONCATENATION"}),
        frozenset({"Mul", "Concat"}), tuned_by=("gate",), label="gate {gate}"),
)

BY_NAME = {kind.name: kind for kind in KINDS}
ASSIGNMENTS = tuple(kind.name for kind in KINDS if kind.code is not None)


def code_function(assignment):
    """Returns the code function (`growth.codes`) of an assignment name.

    Example:

    >>> code_function("triangle").__name__
    'triangle_code'
    """
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}.")
    # Imported here: this table imports no Keras, so the modules that register serializable classes can read
    # it while `keras` itself is still being imported (see `registration`).
    return getattr(importlib.import_module("layerwise_keras.growth.codes"), BY_NAME[assignment].code)


def caches_as_ids(assignment, q=1, keep_input=False):
    """Whether the cached growth stores a stage's code as int16 cluster ids (an exact one-hot code).

    `"nearest"` with `q = 1` is `"hard"` bit for bit; a code that keeps its
    input for a gate (`keep_input`) is not one-hot.

    Example:

    >>> caches_as_ids("nearest", q=1), caches_as_ids("nearest", q=4), caches_as_ids("triangle")
    (True, False, False)
    """
    if keep_input:
        return False
    return BY_NAME["hard" if assignment == "nearest" and q == 1 else assignment].caches_as_ids


def kinds_of(stage):
    """Returns the rows of `KINDS` a `Stage` is of, in the table's order.

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> [kind.name for kind in kinds_of(Stage(None, 3, clusters=8, cluster="patches", assignment="triangle",
    ...                                       whiten=1e-3))]
    ['triangle', 'whitened', 'cluster_first']
    """
    return [kind for kind in KINDS if kind.selects(stage)]


def describe(stages):
    """Labels the kinds of a growth's stages (the CIFAR-10 summary's "stage kinds" column).

    Args:
        stages: a list of `Stage`.

    Returns:
        One string: the labels of the kinds any stage uses, in the table's
        order, `" · "`-separated (`"—"` for none).

    Example:

    >>> from layerwise_keras.growth.stage import Stage
    >>> describe([Stage(None, 5, clusters=512, cluster="patches", assignment="nearest", q=64, readout="pooled",
    ...                 handoff="bottleneck", gate=32), Stage(64, 3)])
    '64-hot · cluster-first · pooled head · bottleneck hand-off · gate 32'
    """
    labels = []
    for stage in stages:
        for kind in kinds_of(stage):
            label = kind.label.format(q=stage.q, gate=stage.gate)
            if label not in labels:
                labels.append(label)
    return " · ".join(labels) or "—"


@dataclasses.dataclass(frozen=True)
class Knob:
    """A search-space key that tunes a clustered stage's `Stage` field (`tuning.space`).

    Args:
        values: `"count"` (integers >= `minimum`), `"assignment"` (names in
            `ASSIGNMENTS`) or `"epsilon"` (a float > 0).
        minimum: the least count.
        none: the hyperparameter value that stands for the field's None
            (keras-tuner has no None choice), or None when the field needs a
            value.
        default: function of a `Stage`: the choices `tuning.default_space`
            offers for it, or None to leave the field out of the default
            space.
        needs: function of a `Stage`: whether the field may be tuned on it
            (else the search space is refused with the reason `needs_what`).
        needs_what: what `needs` asks, for that error.
    """

    values: str
    minimum: int = 1
    none: object = None
    default: object = None
    needs: object = None
    needs_what: str = ""


def halve_double(value, minimum):
    """`{value / 2, value, 2 value}` (integers, at least `minimum`), sorted: a default range around a value.

    Example:

    >>> halve_double(64, 2)
    [32, 64, 128]
    """
    return sorted({max(minimum, value // 2), value, 2 * value})


KNOBS = {
    "clusters": Knob("count", minimum=2, default=lambda stage: halve_double(stage.clusters, 2)),
    # "nearest" with the stage's q = 1 is "hard": offered by default only where the stage already uses it.
    "assignment": Knob("assignment", default=lambda stage: [stage.assignment] + [
        name for name in ASSIGNMENTS if name not in (stage.assignment, "nearest")]),
    "q": Knob("count"),
    "whiten": Knob("epsilon", none=0.0),
    "gate": Knob("count", none=0, default=lambda stage: None if stage.gate is None else [stage.gate, 0],
                 needs=lambda stage: stage.handoff == "bottleneck",
                 needs_what="handoff='bottleneck' (a gate is part of the head a stage hands on)"),
}


def markdown():
    """Returns the table of stage kinds as a markdown table (the one in `docs/stage_kinds.md`).

    Example:

    >>> print(markdown().splitlines()[2])
    | `hard` | the one-hot vector of the nearest centroid (the paper) | ARG_MAX, ONE_HOT | ArgMax, OneHot | int16 ids | assignment |
    """
    lines = ["| kind | what it does | LiteRT ops | ONNX ops | code cached as | tuned by |",
             "|---|---|---|---|---|---|"]
    for kind in KINDS:
        cached = "—" if kind.code is None else "int16 ids" if kind.caches_as_ids else "float16"
        lines.append(f"| `{kind.name}` | {kind.what} | {', '.join(sorted(kind.litert_ops))} "
                     f"| {', '.join(sorted(kind.onnx_ops))} | {cached} | {', '.join(kind.tuned_by) or '—'} |")
    return "\n".join(lines)
