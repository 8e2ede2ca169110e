"""Tests for layerwise_keras.runs.config: bundled configurations and validation errors."""

import copy
import json
import os

import pytest

from layerwise_keras.runs.config import CONFIG_DIR, bundled_configs, load_config, validate_config
from layerwise_keras.growth import Stage


def _write(tmp_path, payload, name="cfg.json"):
    path = tmp_path / name
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return str(path)


@pytest.fixture
def base():
    """The bundled config as raw JSON (before validation), to mutate."""
    with open(os.path.join(CONFIG_DIR, "hierarchical_digits.json")) as f:
        return json.load(f)


def test_bundled_configs_lists_hierarchical_digits():
    names = bundled_configs()
    assert "hierarchical_digits" in names
    assert names == sorted(names)
    assert all(not n.endswith(".json") for n in names)


def test_every_bundled_config_loads():
    for name in bundled_configs():
        config = load_config(name)
        assert config["stages"][-1]["clusters"] is None, name


def test_load_bundled_hierarchical_digits(base):
    config = load_config("hierarchical_digits")
    assert config["dataset"]["name"] == "hierarchical_digits"
    assert [s["clusters"] for s in config["stages"]] == [s.get("clusters") for s in base["stages"]]
    assert config["stages"][0]["clusters"] == 16
    # Stages are normalised to full Stage configs (strides default to the kernel size).
    for stage in config["stages"]:
        assert set(stage) == set(Stage(1).get_config())
        assert stage["strides"] == stage["kernel_size"] == [3, 3]
        assert Stage.from_config(stage).get_config() == stage
    assert config["optimizer"] == base["optimizer"]
    assert config["batch_size"] == base["batch_size"]
    # Validation is idempotent and does not mutate its input.
    snapshot = copy.deepcopy(config)
    assert validate_config(config) == config
    assert config == snapshot


def test_load_from_path_equals_bundled_name(tmp_path, base):
    assert load_config(_write(tmp_path, base)) == load_config("hierarchical_digits")


def test_validate_does_not_mutate_input(base):
    raw = copy.deepcopy(base)
    validate_config(raw)
    assert raw == base


def test_unknown_keys_are_named(tmp_path, base):
    base["learning_rate"] = 0.1
    base["epochs"] = 3
    path = _write(tmp_path, base)
    with pytest.raises(ValueError, match=r"unknown keys \['epochs', 'learning_rate'\]") as info:
        load_config(path)
    assert path in str(info.value)


@pytest.mark.parametrize("key", ["dataset", "stages", "optimizer", "batch_size"])
def test_missing_required_key_is_named(tmp_path, base, key):
    del base[key]
    with pytest.raises(ValueError, match=rf"missing keys \['{key}'\]"):
        load_config(_write(tmp_path, base))


def test_optional_keys_may_be_absent(tmp_path, base):
    for key in ("name", "seed", "description"):
        base.pop(key, None)
    config = load_config(_write(tmp_path, base))
    assert "seed" not in config and "name" not in config


@pytest.mark.parametrize(
    "change, message",
    [
        ({"width": 0}, "width must be a positive integer, got 0"),
        ({"width": 2.5}, "width must be a positive integer"),
        ({"assignment": "foo"}, "assignment must be one of .*'foo'"),
        ({"clusters": 1}, "clusters must be an integer >= 2"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"kernel_size": 0}, "kernel_size must be a positive int"),
        ({"readout": "max"}, "readout must be one of"),
        ({"padding": "full"}, "padding must be 'valid' or 'same'"),
        ({"depth": 3}, r"unknown keys \['depth'\]"),
        ({"kmeans": {"n_clusters": 5}}, "reserved kmeans options"),
    ],
)
def test_bad_stage_values_are_named(tmp_path, base, change, message):
    base["stages"][0].update(change)
    path = _write(tmp_path, base)
    with pytest.raises(ValueError, match=message) as info:
        load_config(path)
    assert "bad stage" in str(info.value)
    assert path in str(info.value)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(stages=[]), "'stages' must be a non-empty list"),
        (lambda c: c.update(stages={"width": 3}), "'stages' must be a non-empty list"),
        (lambda c: c.update(dataset="hierarchical_digits"), "'dataset' must be an object with a 'name'"),
        (lambda c: c["dataset"].pop("name"), "'dataset' must be an object with a 'name'"),
        (lambda c: c.update(batch_size=0), "batch_size must be a positive integer, got 0"),
        (lambda c: c.update(batch_size=1.5), "batch_size must be a positive integer"),
    ],
)
def test_bad_top_level_values_are_named(base, mutate, message):
    mutate(base)
    with pytest.raises(ValueError, match=message):
        validate_config(base, source="mine.json")


@pytest.mark.parametrize("value", [None, "64", True, [64], float("inf"), float("nan"), -2])
def test_ill_typed_batch_size_is_a_value_error(tmp_path, base, value):
    # JSON null / strings / Infinity / NaN must not escape as TypeError or OverflowError.
    base["batch_size"] = value
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        load_config(_write(tmp_path, base))


def test_integral_float_batch_size_is_normalised(base):
    base["batch_size"] = 32.0
    config = validate_config(base)
    assert config["batch_size"] == 32 and type(config["batch_size"]) is int


@pytest.mark.parametrize("value", [float("inf"), None, "wide"])
def test_ill_typed_stage_value_is_a_value_error(tmp_path, base, value):
    base["stages"][1]["width"] = value
    with pytest.raises(ValueError, match="bad stage"):
        load_config(_write(tmp_path, base))


def test_non_object_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        load_config(_write(tmp_path, [1, 2, 3]))


def test_malformed_json_is_a_value_error_naming_the_file(tmp_path):
    path = _write(tmp_path, '{"dataset": {"name": "hierarchical_digits"},, }')
    with pytest.raises(ValueError, match="Cannot read configuration") as info:
        load_config(path)
    assert path in str(info.value)
    assert "line 1" in str(info.value)  # the JSON decoder's position is kept


@pytest.mark.parametrize("name", ["no_such_config", "missing/dir/cfg.json"])
def test_missing_file_is_file_not_found_naming_it(name):
    with pytest.raises(FileNotFoundError, match="No configuration file") as info:
        load_config(name)
    assert repr(name) in str(info.value)
    assert "hierarchical_digits" in str(info.value)  # lists the bundled choices


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="No configuration file"):
        load_config(str(tmp_path))


def test_smoke_config_keeps_the_structure_and_shrinks_the_cost():
    from layerwise_keras.runs.config import smoke_config

    full = load_config("cifar10_paper")
    small = smoke_config(full, train=100, val=10, test=20, shrink=8)
    assert full == load_config("cifar10_paper")  # not modified
    assert small["dataset"]["train"] == 100 and small["dataset"]["test"] == 20
    for big, little in zip(full["stages"], small["stages"]):
        assert little["kernel_size"] == big["kernel_size"] and little.get("assignment") == big.get("assignment")
        assert little["width"] == max(8, big["width"] // 8) and little["epochs"] == 1
        if big.get("clusters"):
            assert little["clusters"] == max(8, big["clusters"] // 8) and little["kmeans"]["max_iter"] == 10
    validate_config(small)
