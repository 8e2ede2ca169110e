"""Resumable growth: checkpoints at every epoch, SIGKILL mid-stage, `train --resume`.

The main test has a CLI training process SIGKILL itself at a set batch of a
set epoch while stage 2 trains (so where the kill lands is known exactly),
resumes it with the same command plus `--resume`, and checks that the final
model predicts what an uninterrupted run with the same seed predicts. Every
run happens in a fresh process with `TF_DETERMINISTIC_OPS=1`: growth is then
deterministic on the CPU (seeded initialisers, epoch-indexed batch order,
seeded k-means), so the two models agree to float rounding.
"""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from helpers import TINY_CLI_CONFIG, kill_command, tree_digest
from layerwise_keras.growth import checkpoint
from layerwise_keras.growth.names import count_stages
from layerwise_keras.runs import pipeline
from layerwise_keras.growth import LayerwiseTrainer, Stage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stage 2 trains for epochs 3-7 (1-based); 600 training images in batches of 64: 10 batches an epoch.
RESUME_CONFIG = {
    **TINY_CLI_CONFIG,
    "name": "resume_tiny",
    "dataset": {"name": "hierarchical_digits", "train": 600, "val": 100, "test": 200},
    "stages": [
        Stage(8, 3, clusters=8, epochs=2).get_config(),
        Stage(8, 3, clusters=8, epochs=5).get_config(),
        Stage(8, 3, epochs=2).get_config(),
    ],
}


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_DETERMINISTIC_OPS="1", PYTHONUNBUFFERED="1")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def _train_cmd(config_path, output, *extra):
    return [sys.executable, "-m", "layerwise_keras.cli", "train", "--config", str(config_path),
            "--output", str(output), "--verbose", "0", *extra]


# The killed run: the CLI's `train`, SIGKILLed (helpers.KILLER) after training batch KILL_BATCH of epoch
# KILL_EPOCH (0-based): mid-epoch, while stage 2 trains, after the checkpoint of the epoch before was written.
KILL_EPOCH, KILL_BATCH = 4, 2  # the 5th epoch of 9, stage 2's 3rd of 5; its 3rd batch of 10


def _train_and_kill_cmd(config_path, output):
    return kill_command("layerwise_keras.runs.pipeline:grow", "layerwise_keras.cli", KILL_EPOCH, KILL_BATCH,
                        _train_cmd(config_path, output)[3:])


def _epochs_done(output):
    folder = output / "checkpoint"
    try:
        name = (folder / "LATEST").read_text().strip()
        return json.loads((folder / name / "state.json").read_text())["epochs_done"]
    except (OSError, ValueError):
        return 0


def _test_logits(output, config):
    model = keras.saving.load_model(str(output / "model.keras"))
    splits = pipeline.load_splits(config["dataset"], seed=config["seed"])
    return model.predict(splits["x_test"], batch_size=256, verbose=0)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "resume_tiny.json"
    path.write_text(json.dumps(RESUME_CONFIG))
    return path


def test_sigkill_during_stage_2_then_resume_equals_an_uninterrupted_run(tmp_path, config_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    done = subprocess.run(_train_cmd(config_path, full), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (full / "checkpoint").exists()  # deleted once the artifacts are written

    cut = subprocess.run(_train_and_kill_cmd(config_path, killed), env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert cut.returncode == -signal.SIGKILL, cut.stderr[-3000:]
    assert f"at epoch {KILL_EPOCH} batch {KILL_BATCH}" in cut.stderr  # our kill, where it was planned
    assert not (killed / "metrics.json").exists() and not (killed / "model.keras").exists()
    # The checkpoint the kill left: the last complete epoch's, KILL_EPOCH (1-based) with stage 2 started (stage 1
    # ended after epoch 2, stage 2 trained epochs 3 and 4 of its 5) and the growth not finished.
    folder = killed / "checkpoint"
    assert (folder / "LATEST").read_text() == f"epoch_{KILL_EPOCH:04d}\n"
    assert sorted(p.name for p in folder.iterdir()) == ["LATEST", f"epoch_{KILL_EPOCH:04d}"]  # no partial, no older
    at_kill = _epochs_done(killed)
    assert at_kill == KILL_EPOCH
    model, state = checkpoint.read_checkpoint(str(folder))
    assert [r["stage"] for r in state["stage_results"]] == [1]
    assert [h["stage"] for h in state["history"]] == [1, 1, 2, 2]
    progress = state["trainer"]
    assert (progress["stage"], progress["stage_epochs"], progress["finished"]) == (1, 2, False)
    assert progress["ended"] == [1]  # 0-based: stage 1 ended after its 2nd epoch
    assert count_stages(model) == 2  # stage 1 frozen and clustered, stage 2 in training
    assert state["config"] == json.loads(json.dumps(pipeline.validate_config(json.loads(config_path.read_text()))))
    before = tree_digest(killed)

    # The same command without --resume refuses to start over on top of the checkpoint.
    again = subprocess.run(_train_cmd(config_path, killed), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr
    assert _epochs_done(killed) == at_kill and tree_digest(killed) == before

    resumed = subprocess.run(_train_cmd(config_path, killed, "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((killed / "metrics.json").read_text())
    full_metrics = json.loads((full / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == KILL_EPOCH
    assert len(metrics["history"]["val_accuracy"]) == 9  # the whole growth's epochs, before and after the kill
    assert metrics["history"]["stage"] == full_metrics["history"]["stage"] == [1, 1, 2, 2, 2, 2, 2, 3, 3]
    np.testing.assert_allclose(metrics["history"]["loss"], full_metrics["history"]["loss"], rtol=1e-4, atol=1e-6)
    a, b = _test_logits(full, RESUME_CONFIG), _test_logits(killed, RESUME_CONFIG)
    np.testing.assert_array_equal(a.argmax(-1), b.argmax(-1))
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert metrics["test_accuracy"] == full_metrics["test_accuracy"]
    assert not (killed / "checkpoint").exists()


def test_resume_without_a_checkpoint_is_an_error(tmp_path, config_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        pipeline.run(json.loads(config_path.read_text()), str(tmp_path / "new"), resume=True, verbose=0)
    with pytest.raises(ValueError, match="contradict"):
        pipeline.check_output_dir(str(tmp_path), overwrite=True, resume=True)


def _interrupted_run(tmp_path, config):
    """A run folder as a killed run leaves it: the checkpoint after epoch 3 (written by a real growth)."""
    out = tmp_path / "run"
    splits = pipeline.load_splits(config["dataset"], seed=config["seed"])
    config = pipeline.validate_config(config)

    class Killed(Exception):
        pass

    class Stop(keras.callbacks.Callback):  # runs before the checkpoint callback
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:
                raise Killed  # stands in for the kill: epoch 4 ends, its checkpoint is never written

    with pytest.raises(Killed):
        pipeline.grow(config, splits, seed=config["seed"], verbose=0, callbacks=[Stop()],
                      checkpoint_dir=str(out / "checkpoint"))
    assert _epochs_done(out) == 3
    return out, config


def test_a_folder_with_a_checkpoint_is_not_overwritten_without_being_asked(tmp_path, config_path):
    out, config = _interrupted_run(tmp_path, json.loads(config_path.read_text()))
    before = tree_digest(out)
    with pytest.raises(FileExistsError, match="--resume"):
        pipeline.run(config, str(out), verbose=0)
    other = dict(config, seed=config["seed"] + 1)
    with pytest.raises(ValueError, match="different configuration"):
        pipeline.run(other, str(out), resume=True, verbose=0)
    assert tree_digest(out) == before


def test_a_corrupt_checkpoint_is_a_clear_error_and_stays_as_it_was(tmp_path, config_path):
    out, config = _interrupted_run(tmp_path, json.loads(config_path.read_text()))
    name = (out / "checkpoint" / "LATEST").read_text().strip()
    model_file = out / "checkpoint" / name / "model.keras"
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    before = tree_digest(out)
    with pytest.raises(ValueError, match=r"model\.keras.*(truncated|corrupt)"):
        pipeline.run(config, str(out), resume=True, verbose=0)
    assert tree_digest(out) == before  # the failed resume left the checkpoint as it was
    state_file = out / "checkpoint" / name / "state.json"
    model_file.write_bytes(data)
    state_file.write_text("{not json")
    with pytest.raises(ValueError, match=r"state\.json is missing or corrupt"):
        checkpoint.read_checkpoint(str(out / "checkpoint"))
    (out / "checkpoint" / "LATEST").write_text("elsewhere\n")
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        checkpoint.read_checkpoint(str(out / "checkpoint"))


def test_trainer_restore_checks_the_stage_count():
    x = np.zeros((4, 9, 9, 1), np.float32)
    trainer = LayerwiseTrainer([Stage(4, 3, clusters=2, epochs=2), Stage(4, 3, epochs=1)], 2, kmeans_data=x)
    with pytest.raises(ValueError, match="1 stage"):
        trainer.restore([], 2)  # stage 1 ended after epoch 2: one result expected
    with pytest.raises(ValueError, match="epochs_done"):
        trainer.restore([], 4)
    assert trainer.restore([{"stage": 1}], 2).stage_results == [{"stage": 1}]


def test_checkpoint_every_saves_at_its_period_and_every_stage_end(tmp_path, monkeypatch):
    # RESUME_CONFIG's stages train 2, 5 and 2 epochs: stage ends after epochs 2, 7 and 9 (1-based).
    x = np.zeros((4, 9, 9, 1), np.float32)
    trainer = LayerwiseTrainer([Stage.from_config(s) for s in RESUME_CONFIG["stages"]], 2, kmeans_data=x)
    every3 = checkpoint.GrowthCheckpoint(tmp_path, trainer, {}, every=3)
    assert [e + 1 for e in range(trainer.total_epochs) if every3.due(e)] == [2, 3, 6, 7, 9]
    every1 = checkpoint.GrowthCheckpoint(tmp_path, trainer, {})
    assert all(every1.due(e) for e in range(trainer.total_epochs))
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        checkpoint.GrowthCheckpoint(tmp_path, trainer, {}, every=0)

    # In a real growth: the saves happen where `due` says, and the history still has every epoch.
    saved = []
    save = checkpoint.GrowthCheckpoint._save
    monkeypatch.setattr(checkpoint.GrowthCheckpoint, "_save",
                        lambda self, epoch: (saved.append(epoch + 1), save(self, epoch))[1])
    config = json.loads(json.dumps(RESUME_CONFIG))
    splits = pipeline.load_splits(config["dataset"], seed=config["seed"])
    _, figures = pipeline.grow(config, splits, seed=config["seed"], verbose=0,
                               checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=4)
    assert saved == [2, 4, 7, 8, 9]
    assert len(figures["history"]["loss"]) == 9
    state = checkpoint.read_checkpoint(str(tmp_path / "ckpt"))[1]
    assert state["epochs_done"] == 9 and len(state["history"]) == 9


def test_a_bad_checkpoint_period_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="checkpoint_every"):
        pipeline.run(json.loads(json.dumps(TINY_CLI_CONFIG)), str(out), verbose=0, checkpoint_every=0)
    assert not out.exists()


def test_a_cached_run_killed_after_a_checkpoint_resumes_to_the_uninterrupted_growth(tmp_path, monkeypatch):
    """`"cache": true` runs checkpoint too (grow_cached's own files); `run(resume=True)` continues them."""
    from layerwise_keras.growth import cached

    config = pipeline.validate_config(dict(RESUME_CONFIG, cache=True))
    full = pipeline.run(config, str(tmp_path / "full"), verbose=0)
    assert not (tmp_path / "full" / "checkpoint").exists()  # deleted once the artifacts are written
    write = cached.write_checkpoint

    class Killed(Exception):
        pass

    def write_then_die(folder, model, state, arrays):
        write(folder, model, state, arrays)
        if state["epochs_done"] == KILL_EPOCH:  # inside stage 2, as in the SIGKILL test above
            raise Killed

    monkeypatch.setattr(cached, "write_checkpoint", write_then_die)
    with pytest.raises(Killed):
        pipeline.run(config, str(tmp_path / "killed"), verbose=0)
    monkeypatch.setattr(cached, "write_checkpoint", write)
    assert _epochs_done(tmp_path / "killed") == KILL_EPOCH
    with pytest.raises(FileExistsError, match="--resume"):  # not started over without being asked
        pipeline.run(config, str(tmp_path / "killed"), verbose=0)
    with pytest.raises(ValueError, match="other stages, data sizes, optimizer, seed or configuration"):
        pipeline.run(dict(config, seed=config["seed"] + 1), str(tmp_path / "killed"), resume=True, verbose=0)
    uncached = dict(config, cache=False)  # the trainer's path refuses the cached growth's checkpoint
    with pytest.raises(ValueError, match="different configuration"):
        pipeline.run(uncached, str(tmp_path / "killed"), resume=True, verbose=0)
    metrics = pipeline.run(config, str(tmp_path / "killed"), resume=True, verbose=0)
    assert metrics["resumed_from_epoch"] == KILL_EPOCH
    assert metrics["history"]["stage"] == full["history"]["stage"] == [1, 1, 2, 2, 2, 2, 2, 3, 3]
    np.testing.assert_allclose(metrics["history"]["loss"], full["history"]["loss"], rtol=1e-3)
    assert abs(metrics["test_accuracy"] - full["test_accuracy"]) <= 2 / 200  # two of the 200 test images
    assert not (tmp_path / "killed" / "checkpoint").exists()
