"""`Stage`: the configuration of one stage of layerwise growth.
"""

import dataclasses
import math

from layerwise_keras.clustering.kmeans import KMeans
from layerwise_keras.growth.kinds import ASSIGNMENTS


READOUTS = ("flatten", "global_avg", "pooled")
CLUSTER_SOURCES = ("embeddings", "patches")
HANDOFFS = ("code", "bottleneck")
SCHEDULES = (None, "cosine", "step")
MODES = ("auto", "min", "max")


def _pair(value, name):
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"Stage: {name} must be a positive int or a pair of them, got {value!r}.")
    return value


@dataclasses.dataclass
class Stage:
    """One stage of layerwise growth: a two-layer net, then k-means.

    Args:
        width: int, number of filters of the stage's convolution; None for a
            `cluster="patches"` stage (its convolution extracts the raw
            patches: `kh * kw * channels` filters).
        kernel_size: int or pair, the convolution's window (s in the paper).
        strides: int or pair, or `None` for `kernel_size` (non-overlapping
            s x s patches, as in the paper).
        clusters: int K, the number of k-means clusters the stage's
            embeddings are grouped into, or `None` for the last stage, whose
            readout is the final classifier.
        epochs: int, training epochs of the stage's two-layer net (with
            `patience`: the most it may take).
        steps: int or None, a budget in gradient steps instead of epochs:
            the stage trains `ceil(steps / steps_per_epoch)` epochs (the
            `LayerwiseTrainer` needs `steps_per_epoch`). Give `epochs` or
            `steps`, not both. A fixed number of steps per stage keeps small
            training sets from starving a stage of updates.
        patience: int or None, train until converged: the stage ends when
            `monitor` has not improved (by more than `min_delta`) for this
            many epochs, or at its `epochs` / `steps` budget, whichever comes
            first; the weights of its best epoch are restored before k-means.
            None (the default) trains for the whole budget.
        monitor: the quantity convergence watches: `"auto"` (`val_loss` when
            `fit` validates, else `loss`), or any key of the epoch logs
            (`"loss"`, `"val_loss"`, `"val_accuracy"`, ...; accuracy-like
            keys are maximised, the others minimised).
        min_delta: float >= 0, the least change of `monitor` that counts as
            an improvement.
        mode: whether `monitor` improves by growing (`"max"`) or shrinking
            (`"min"`); `"auto"` (the default) decides as Keras'
            `EarlyStopping` does: losses shrink, a compiled metric follows
            its direction (accuracy, AUC grow), anything else is an error
            asking for `mode` (`growth.convergence`).
        assignment: how embeddings become the next stage's input: `"hard"`
            (one-hot of the nearest centroid, the paper), `"nearest"` (the
            multi-hot mask of the `q` nearest), `"soft"` or `"triangle"`
            (see `ClusterAssignment`).
        temperature: softmax temperature of the `"soft"` assignment.
        q: int, the number of nearest centroids of `"nearest"` (1 = `"hard"`).
        whiten: None (the default: k-means on the raw embeddings) or a float
            epsilon > 0: ZCA-whiten the embeddings before k-means (fitted on
            the stage's training positions, eigenvalues regularised by
            epsilon times their mean, see `clustering.fit_zca`); the transform
            is kept in the stage's `ClusterAssignment`. 1e-2 is a good start.
        readout: `"flatten"` (flatten + dense), `"global_avg"` (global
            average pooling + dense) or `"pooled"`: average pooling
            (`pool_size`, `pool_strides`) -> BatchNorm -> 1x1 convolution to
            `bottleneck` channels -> optionally a 3x3 convolution of `hidden`
            channels + ReLU -> flatten -> dense, the head of Brutzkus et al.
            2022 and Thiry et al. 2021. The paper does not say which.
        pool_size: int or pair, the `"pooled"` readout's average-pooling window.
        pool_strides: int or pair, or None for `pool_size`.
        bottleneck: int, the `"pooled"` readout's 1x1 convolution width.
        batchnorm: bool, whether the `"pooled"` readout normalises the pooled
            map before the bottleneck (BatchNorm with momentum 0.9, so its
            moving statistics, which inference uses, converge within a short
            stage).
        hidden: int or None, the width of the `"pooled"` readout's hidden
            3x3 convolution + ReLU (None: no hidden layer).
        schedule: the learning rate within the stage: None (constant),
            `"cosine"` (cosine decay towards 0 over the stage's budget, taken
            at each epoch's mid-point) or `"step"` (divided by 10 at 50 % and
            again at 75 % of the budget); set at each epoch's start from the
            compiled optimizer's (constant) learning rate.
        padding: `"valid"` or `"same"`, the convolution's padding.
        input_pool: None, or an int or pair: average-pool the stage's input
            (the previous stage's code) with this window before its
            convolution, as the follow-up works pool a code before their head:
            cheaper stages on a high-resolution code, and a code histogram per
            region as the next stage's input.
        input_pool_strides: int or pair, or None for `input_pool`.
        kmeans: dict of extra `layerwise_keras.KMeans` arguments
            (`max_iter`, `tol`, `max_points_per_centroid`, `init`, ...).
        cluster: what k-means clusters. `"embeddings"` (the default, the
            paper's order): the stage trains its convolution + readout by
            gradient descent, then clusters the convolution's embeddings.
            `"patches"` (cluster first, as Thiry et al. 2021 and Brutzkus et
            al. 2022): the stage's convolution is a frozen patch extraction
            (an identity kernel, no bias, no ReLU), k-means clusters the
            (whitened, with `whiten`) input patches when the stage begins, and
            the stage's `epochs` train its readout by gradient descent on the
            code; the readout is dropped when the stage ends, as in the paper's
            order. Needs `clusters` and `width=None`. In the end-to-end twin
            (`end_to_end_model`) the convolution is an ordinary trainable
            convolution + ReLU of the same shape.
        handoff: what the next stage receives: `"code"` (the default, the
            paper: the cluster assignment's output) or `"bottleneck"` (the
            follow-up's stacking, Brutzkus et al. 2022): the stage's pooled
            readout up to its 1x1 bottleneck (average pooling -> BatchNorm ->
            1x1 convolution), frozen and kept after the assignment, so the
            next stage whitens and clusters a dense `bottleneck`-channel map.
            Needs `cluster="patches"` (whose readout is trained on the code)
            and `readout="pooled"`.
        gate: None (the default: the readout sees the code alone) or an int
            C: the "full" code of Brutzkus et al. 2022, the code times a
            learned linear map of the patch per cluster. The stage's readout
            begins with a `CodeGate` that appends C gated channels
            `(m @ A) * (x @ V)` to the code m, x the stage's input patch
            (cluster k's map `x -> a_k * (x @ V)`), trained by gradient
            descent with the rest of the head and handed on with it; the code
            itself stays the frozen k-means assignment. Needs
            `handoff="bottleneck"` (so `cluster="patches"`, `readout="pooled"`).
            In the end-to-end twin it is a plain 1x1 convolution of C channels.

    Returns:
        A `Stage` (a dataclass; `get_config()` / `Stage.from_config()` convert
        it to and from a JSON-able dict).

    Example:

    >>> stages = [Stage(width=32, kernel_size=3, clusters=16, epochs=2),
    ...           Stage(width=64, kernel_size=3, steps=400, patience=3)]
    >>> first = Stage(None, 5, strides=1, clusters=512, cluster="patches", whiten=1e-2)
    """

    width: object
    kernel_size: object = 3
    strides: object = None
    clusters: object = None
    epochs: int = 1
    steps: object = None
    patience: object = None
    monitor: str = "auto"
    min_delta: float = 0.0
    assignment: str = "hard"
    temperature: float = 1.0
    q: int = 1
    whiten: object = None
    readout: str = "flatten"
    pool_size: object = 4
    pool_strides: object = None
    bottleneck: int = 64
    batchnorm: bool = True
    hidden: object = None
    schedule: object = None
    padding: str = "valid"
    input_pool: object = None
    input_pool_strides: object = None
    kmeans: dict = dataclasses.field(default_factory=dict)
    cluster: str = "embeddings"
    handoff: str = "code"
    gate: object = None
    mode: str = "auto"

    def __post_init__(self):
        if self.cluster not in CLUSTER_SOURCES:
            raise ValueError(f"Stage: cluster must be one of {CLUSTER_SOURCES}, got {self.cluster!r}.")
        if self.cluster == "patches":
            if self.width is not None:
                raise ValueError(
                    f"Stage: a cluster='patches' stage's convolution extracts the raw patches (kh * kw * channels "
                    f"filters); give width=None, got width={self.width!r}."
                )
            if self.clusters is None:
                raise ValueError("Stage: cluster='patches' clusters the stage's input patches; it needs clusters=K.")
        elif (self.width is None or isinstance(self.width, bool) or int(self.width) != self.width
              or self.width < 1):
            raise ValueError(f"Stage: width must be a positive integer, got {self.width!r}.")
        if self.handoff not in HANDOFFS:
            raise ValueError(f"Stage: handoff must be one of {HANDOFFS}, got {self.handoff!r}.")
        if self.handoff == "bottleneck" and (self.cluster != "patches" or self.readout != "pooled"):
            raise ValueError(
                "Stage: handoff='bottleneck' hands the next stage the readout's bottleneck trained on the code: it "
                f"needs cluster='patches' and readout='pooled' (got cluster={self.cluster!r}, "
                f"readout={self.readout!r})."
            )
        if self.gate is not None:
            if isinstance(self.gate, bool) or int(self.gate) != self.gate or self.gate < 1:
                raise ValueError(f"Stage: gate must be None or a positive integer, got {self.gate!r}.")
            if self.handoff != "bottleneck":
                raise ValueError(
                    "Stage: gate gates the stage's head by its code and hands the gated map on; it needs "
                    f"handoff='bottleneck' (got handoff={self.handoff!r}: the code alone would be handed on and "
                    "the gate discarded)."
                )
        self.kernel_size = _pair(self.kernel_size, "kernel_size")
        self.strides = self.kernel_size if self.strides is None else _pair(self.strides, "strides")
        if self.clusters is not None and (int(self.clusters) != self.clusters or self.clusters < 2):
            raise ValueError(
                f"Stage: clusters must be an integer >= 2 or None, got {self.clusters!r}."
            )
        if isinstance(self.epochs, bool) or int(self.epochs) != self.epochs or self.epochs < 1:
            raise ValueError(f"Stage: epochs must be a positive integer, got {self.epochs!r}.")
        for name in ("steps", "patience"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"Stage: {name} must be a positive integer or None, got {value!r}.")
        if self.steps is not None and self.epochs != 1:
            raise ValueError(
                f"Stage: give epochs or steps, not both (got epochs={self.epochs}, steps={self.steps})."
            )
        if self.mode not in MODES:
            raise ValueError(f"Stage: mode must be one of {MODES}, got {self.mode!r}.")
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ValueError(f"Stage: monitor must be 'auto' or a key of the epoch logs, got {self.monitor!r}.")
        if not (isinstance(self.min_delta, (int, float)) and not isinstance(self.min_delta, bool)
                and self.min_delta >= 0):
            raise ValueError(f"Stage: min_delta must be a number >= 0, got {self.min_delta!r}.")
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(
                f"Stage: assignment must be one of {ASSIGNMENTS}, got {self.assignment!r}."
            )
        if isinstance(self.q, bool) or int(self.q) != self.q or self.q < 1:
            raise ValueError(f"Stage: q must be a positive integer, got {self.q!r}.")
        if self.q != 1 and self.assignment != "nearest":
            raise ValueError(f"Stage: q={self.q} needs assignment='nearest' (got {self.assignment!r}).")
        if self.clusters is not None and self.q > self.clusters:
            raise ValueError(f"Stage: q={self.q} is more than the {self.clusters} clusters.")
        if self.whiten is not None and (isinstance(self.whiten, bool) or not isinstance(self.whiten, (int, float))
                                        or not self.whiten > 0):
            raise ValueError(f"Stage: whiten must be None or an epsilon > 0, got {self.whiten!r}.")
        if self.readout not in READOUTS:
            raise ValueError(f"Stage: readout must be one of {READOUTS}, got {self.readout!r}.")
        self.pool_size = _pair(self.pool_size, "pool_size")
        self.pool_strides = self.pool_size if self.pool_strides is None else _pair(self.pool_strides, "pool_strides")
        if isinstance(self.bottleneck, bool) or int(self.bottleneck) != self.bottleneck or self.bottleneck < 1:
            raise ValueError(f"Stage: bottleneck must be a positive integer, got {self.bottleneck!r}.")
        if not isinstance(self.batchnorm, bool):
            raise ValueError(f"Stage: batchnorm must be True or False, got {self.batchnorm!r}.")
        if self.hidden is not None and (isinstance(self.hidden, bool) or int(self.hidden) != self.hidden
                                        or self.hidden < 1):
            raise ValueError(f"Stage: hidden must be None or a positive integer, got {self.hidden!r}.")
        if self.input_pool is not None:
            self.input_pool = _pair(self.input_pool, "input_pool")
            self.input_pool_strides = (self.input_pool if self.input_pool_strides is None
                                       else _pair(self.input_pool_strides, "input_pool_strides"))
        elif self.input_pool_strides is not None:
            raise ValueError("Stage: input_pool_strides needs input_pool.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Stage: schedule must be one of {SCHEDULES}, got {self.schedule!r}.")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Stage: padding must be 'valid' or 'same', got {self.padding!r}.")
        unknown = set(self.kmeans) - set(KMeans.__init__.__code__.co_varnames[1:])
        if unknown or "n_clusters" in self.kmeans:
            raise ValueError(
                f"Stage: unknown or reserved kmeans options {sorted(unknown | ({'n_clusters'} & set(self.kmeans)))}; "
                "set the number of clusters with Stage(clusters=...)."
            )

    def budget(self, steps_per_epoch=None):
        """The stage's budget in epochs: `epochs`, or `ceil(steps / steps_per_epoch)` for a `steps` budget.

        The one place this rule is written: the `LayerwiseTrainer`, the cached
        growth and the end-to-end twin all count epochs with it.

        Args:
            steps_per_epoch: the training batches per epoch (needed for a
                `steps` budget).

        Returns:
            An int >= 1.

        Example:

        >>> Stage(8, steps=100).budget(steps_per_epoch=30)
        4
        """
        if self.steps is None:
            return int(self.epochs)
        if steps_per_epoch is None:
            raise ValueError(f"Stage: a budget of steps={self.steps} needs the steps per epoch to count epochs.")
        return -(-int(self.steps) // int(steps_per_epoch))

    def learning_rate(self, initial, done, budget):
        """The learning rate of the stage's epoch `done` (0-based) of `budget`: `initial * lr_factor(...)`.

        Example:

        >>> Stage(8, schedule="step").learning_rate(0.1, 5, 8)
        0.010000000000000002
        """
        return float(initial) * self.lr_factor(done, budget)

    def lr_factor(self, done, budget):
        """The factor of the initial learning rate for a stage epoch, by `schedule`.

        Args:
            done: the stage's epochs already run (0 for its first epoch).
            budget: the stage's budget in epochs.

        Returns:
            A float in (0, 1].

        Example:

        >>> Stage(8, schedule="step").lr_factor(5, 8)
        0.1
        """
        t = min(max(done / max(budget, 1), 0.0), 1.0)
        if self.schedule == "cosine":
            # The mid-point of the epoch, so a 1-epoch stage is not at 0.
            t = min((done + 0.5) / max(budget, 1), 1.0)
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if self.schedule == "step":
            return 1.0 if t < 0.5 else (0.1 if t < 0.75 else 0.01)
        return 1.0

    def get_config(self):
        """Returns the stage as a JSON-able dict."""
        config = dataclasses.asdict(self)
        config["kernel_size"] = list(self.kernel_size)
        config["strides"] = list(self.strides)
        config["pool_size"] = list(self.pool_size)
        config["pool_strides"] = list(self.pool_strides)
        for key in ("input_pool", "input_pool_strides"):
            if config[key] is not None:
                config[key] = list(config[key])
        return config

    @classmethod
    def from_config(cls, config):
        """Creates a stage from `get_config()`'s dict (unknown keys are an error)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(config) - fields
        if unknown:
            raise ValueError(f"Stage: unknown keys {sorted(unknown)}; expected a subset of {sorted(fields)}.")
        return cls(**config)
