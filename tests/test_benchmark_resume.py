"""Benchmarks that span sessions: `cifar10.py` and `cifar10_ablation.py` with `--run-dir` and `--resume`.

Each killed run is a real SIGKILL at a set batch of a set epoch (a callback
the benchmark's own `grow` / `end_to_end` get from `helpers.KILLER`, as in
`tests/test_checkpoint.py`), or right after a cached growth's n-th epoch
checkpoint (`helpers.CALL_KILLER`: a cached growth takes no callbacks), so
where the kill lands does not depend on timing; the same command with
`--resume` then finishes the run. Quick mode on a CIFAR-10 slice (skipped
without the local copy), `TF_DETERMINISTIC_OPS=1`.
"""

import json
import os
import subprocess
import sys

import pytest

from helpers import kill_after_call_command, kill_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, os.pardir, "shared", "data")
NO_CIFAR = not os.path.isfile(os.path.join(SHARED, "cifar10", "exact_subset.npz"))
pytestmark = pytest.mark.skipif(NO_CIFAR, reason=f"no local CIFAR-10 copy at {SHARED}/cifar10")

def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_DETERMINISTIC_OPS="1", PYTHONUNBUFFERED="1")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def _run(args, timeout=900):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=_env())


def _killed(script, function, epoch, batch, args):
    """Runs benchmarks/<script> with `args`, SIGKILLed in the `fit` of its `function` at `epoch`, `batch`."""
    path = os.path.join(ROOT, "benchmarks", script)
    target = f"{path}:{function}"
    result = _run(kill_command(target, path, epoch, batch, args)[1:])
    assert result.returncode == -9, (result.returncode, result.stderr[-3000:])  # SIGKILL, not a clean exit
    assert f"SIGKILL in {target} at epoch {epoch}" in result.stderr
    return result


def _killed_growth(config, args):
    """Runs benchmarks/cifar10.py with `args`, SIGKILLed in its growth once 1 of its 3 one-epoch stages is done and
    the 2nd is under way (the trainer's growth) or done (a cached growth, killed after its 2nd epoch checkpoint)."""
    if not config.get("cache"):
        return _killed("cifar10.py", "grow", 1, 0, args)
    path, target = os.path.join(ROOT, "benchmarks", "cifar10.py"), "layerwise_keras.growth.cached:write_checkpoint"
    result = _run(kill_after_call_command(target, path, 2, args)[1:])
    assert result.returncode == -9, (result.returncode, result.stderr[-3000:])
    assert f"SIGKILL in {target} after call 2" in result.stderr
    return result


# The bundled cifar10_best grows cached (its own checkpoints), cifar10_stacked with the LayerwiseTrainer inside fit
# (the benchmark's epoch clock and GrowthCheckpoint callbacks): both growth paths of the benchmark.
@pytest.mark.parametrize("name", ["cifar10_best", "cifar10_stacked"])
def test_a_cifar10_run_killed_in_its_growth_and_in_its_twin_resumes_to_the_uninterrupted_figures(tmp_path, name):
    from layerwise_keras.runs.config import load_config

    script, config = os.path.join(ROOT, "benchmarks", "cifar10.py"), load_config(name)
    assert bool(config.get("cache")) == (name == "cifar10_best")  # both paths covered, as the comment says

    def args(run, *extra):
        return ["--config", name, "--quick", "--train", "300", "--data-dir", SHARED,
                "--output", str(tmp_path / run), "--run-dir", str(tmp_path / f"{run}_run"), *extra]

    plain = _run([script, *args("plain")])
    assert plain.returncode == 0, plain.stderr[-3000:]
    # Killed in the growth (in or after its 2nd epoch: stage 2 of the quick run's one-epoch stages), then in the
    # twin's 2nd epoch.
    _killed_growth(config, args("killed"))
    again = _run([script, *args("killed")])  # without --resume: refused, the folder is kept
    assert again.returncode == 2 and "pass --resume" in again.stderr
    # The growth's model is saved to --save-model before the twin begins; the same command resumes after the
    # twin's kill and keeps that file (a --save-model path that exists is otherwise refused).
    saved = tmp_path / "grown.keras"
    _killed("cifar10.py", "end_to_end", 1, 0, args("killed", "--resume", "--save-model", str(saved)))
    written = saved.stat().st_mtime_ns
    done = _run([script, *args("killed", "--resume", "--save-model", str(saved))])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the growth is done" in done.stdout and "kept as it is" in done.stdout
    assert saved.stat().st_mtime_ns == written

    stem = f"cifar10_{name}_quick"
    ours = json.loads((tmp_path / "killed" / f"{stem}.json").read_text())
    reference = json.loads((tmp_path / "plain" / f"{stem}.json").read_text())
    resumed_from = 2 if config.get("cache") else 1  # the checkpoint after the 2nd epoch; the trainer's, in it
    assert ours["resumed"] and ours["layerwise"]["resumed_from_epoch"] == resumed_from and ours["end_to_end"]["resumed"]
    assert "resumed after a kill" in (tmp_path / "killed" / f"{stem}.md").read_text()
    assert "resumed" not in reference and "resumed_from_epoch" not in reference["layerwise"]
    # The growth resumed from its checkpoint trains as the uninterrupted one (its data order depends on the
    # epoch only): the same figures up to float rounding (1,000 test images: 0.002 is two of them).
    lw, ref = ours["layerwise"], reference["layerwise"]
    assert abs(lw["test_accuracy"] - ref["test_accuracy"]) <= 0.002, (lw["test_accuracy"], ref["test_accuracy"])
    for a, b in zip(lw["stages"], ref["stages"], strict=True):  # 500 validation images: 0.002 is one
        assert abs(a["val_accuracy"] - b["val_accuracy"]) <= 0.0021, (a["val_accuracy"], b["val_accuracy"])
    # Every epoch keeps its time: the resumed clock spans all epochs, increasing.
    assert len(lw["epoch_seconds"]) == len(ref["epoch_seconds"]) == 3
    assert all(a < b for a, b in zip(lw["epoch_seconds"], lw["epoch_seconds"][1:]))
    # The twin resumes from Keras' BackupAndRestore (at its epoch boundary; its shuffle order restarts in the new
    # process), so it ends near, not at, the uninterrupted twin: quick mode's 300 images leave wide seed noise.
    twin, twin_ref = ours["end_to_end"], reference["end_to_end"]
    assert len(twin["epoch_seconds"]) == len(twin_ref["epoch_seconds"]) == 3
    assert abs(twin["test_accuracy"] - twin_ref["test_accuracy"]) <= 0.08, (twin["test_accuracy"],
                                                                             twin_ref["test_accuracy"])


def test_a_killed_ablation_resumes_keeping_its_finished_rows(tmp_path):
    script = os.path.join(ROOT, "benchmarks", "cifar10_ablation.py")
    args = ["--quick", "--rows", "end_to_end", "base", "--data-dir", SHARED, "--output", str(tmp_path),
            "--run-dir", str(tmp_path / "run")]
    # Killed in the second row's growth (its 2nd epoch), after the first row (trained end to end) was written.
    _killed("cifar10_ablation.py", "grow", 1, 0, args)
    first = json.loads((tmp_path / "cifar10_ablation_quick.json").read_text())
    assert [r["row"] for r in first["rows"]] == ["end_to_end"]
    refused = _run([script, *args])
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    done = _run([script, *args, "--resume"])
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "cifar10_ablation_quick.json").read_text())
    assert [r["row"] for r in report["rows"]] == ["end_to_end", "base"]
    assert report["rows"][0] == first["rows"][0]  # the finished row is kept as it was
    assert report["rows"][1]["resumed"] and "resumed" not in report["rows"][0]
    assert report["commit"] == first["commit"] and len(report["resumes"]) == 1
    assert "--resume" in report["resumes"][0]["command"]
    assert "continued from their last checkpoint" in (tmp_path / "cifar10_ablation_quick.md").read_text()
    assert [s["epochs"] for s in report["rows"][1]["stages"]] == [1, 1, 1]  # every stage of the resumed row
    nothing = _run([script, *args[:-2], "--resume"])
    assert nothing.returncode == 2 and "--resume needs --run-dir" in nothing.stderr
