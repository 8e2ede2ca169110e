"""Tests for layerwise_keras.runs.config: bundled configurations and validation errors."""

import copy
import json
import os

import pytest

from layerwise_keras.runs import config as config_module
from layerwise_keras.runs.config import CONFIG_DIR, bundled_configs, check_config, load_config, validate_config
from layerwise_keras.runs.variants import smoke_config, uncached_config
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
        ({"width": 0}, r"bad stage: stages\[0\]\.width must be a positive integer, got 0"),
        ({"clusters": 1}, r"bad stage: stages\[0\]\.clusters must be an integer >= 2"),
        ({"epochs": 0}, r"bad stage: stages\[0\]\.epochs must be a positive integer"),
        ({"kernel_size": 0}, r"bad stage: stages\[0\]\.kernel_size must be a positive int"),
        ({"q": 2}, r"bad stage: stages\[0\]: q=2 needs assignment='nearest'"),
    ],
)
def test_bad_stage_values_are_named(tmp_path, base, change, message):
    # Ranges and combinations are Stage's: checked after Keras is imported, with the stage's path.
    base["stages"][0].update(change)
    path = _write(tmp_path, base)
    load_config(path, full=False)  # keys and types are fine
    with pytest.raises(ValueError, match=message) as info:
        load_config(path)
    assert path in str(info.value)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"width": 2.5}, r"stages\[0\]\.width must be an integer or null, got 2\.5"),
        ({"assignment": "foo"}, r"stages\[0\]\.assignment must be one of \['hard', .*\], got 'foo'"),
        ({"assignment": "triangel"}, r"stages\[0\]\.assignment must be one of .*\(did you mean 'triangle'\?\)"),
        ({"readout": "max"}, r"stages\[0\]\.readout must be one of"),
        ({"padding": "full"}, r"stages\[0\]\.padding must be one of \['valid', 'same'\]"),
        ({"batchnorm": 1}, r"stages\[0\]\.batchnorm must be true or false, got 1"),
        ({"kernel_size": "3x3"}, r"stages\[0\]\.kernel_size must be an integer or a list of integers"),
        ({"xyz": 3}, r"unknown keys \['stages\[0\]\.xyz'\]; a stage takes \['width', "),
        ({"widht": 3}, r"unknown keys \['stages\[0\]\.widht'\] \(did you mean 'width'\?\)"),
        ({"kmeans": []}, r"stages\[0\]\.kmeans must be an object, got \[\]"),
        ({"kmeans": {"n_clusters": 5}}, r"stages\[0\]\.kmeans\.n_clusters is reserved: .*stages\[0\]\.clusters"),
        ({"kmeans": {"max_iterr": 5}},
         r"unknown keys \['stages\[0\]\.kmeans\.max_iterr'\] \(did you mean 'max_iter'\?\); stages\[0\]\.kmeans takes"),
    ],
)
def test_stage_keys_and_types_are_checked_without_keras_naming_the_path(tmp_path, base, change, message):
    base["stages"][0].update(change)
    path = _write(tmp_path, base)
    for full in (False, True):
        with pytest.raises(ValueError, match=message) as info:
            load_config(path, full=full)
        assert str(info.value).startswith(f"{path}: ")


def test_a_stage_that_is_not_an_object_is_named(base):
    base["stages"][1] = 64
    with pytest.raises(ValueError, match=r"mine\.json: stages\[1\] must be an object, got 64"):
        check_config(base, source="mine.json")


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


@pytest.mark.parametrize("value, message", [(float("inf"), "must be an integer or null, got inf"),
                                            (None, "must be a positive integer, got None"),  # Stage's check
                                            ("wide", "must be an integer or null, got 'wide'")])
def test_ill_typed_stage_value_is_a_value_error(tmp_path, base, value, message):
    base["stages"][1]["width"] = value
    with pytest.raises(ValueError, match=r"stages\[1\]\.width " + message):
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


@pytest.mark.parametrize("name", ["missing/dir/cfg.json", "cfg.json"])
def test_missing_file_is_file_not_found_naming_it(name):
    with pytest.raises(FileNotFoundError, match="No configuration file") as info:
        load_config(name)
    assert repr(name) in str(info.value)
    assert "hierarchical_digits" in str(info.value)  # lists the bundled choices


def test_unknown_bundled_name_lists_the_choices():
    with pytest.raises(FileNotFoundError) as info:
        load_config("cifar10")
    message = str(info.value)
    assert message.startswith("no bundled config named 'cifar10' (did you mean 'cifar10_best', ")
    assert "choices: cifar10_best, cifar10_paper, cifar10_stacked, hierarchical_2level" in message
    assert "No configuration file" not in message


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="No configuration file"):
        load_config(str(tmp_path))


def test_smoke_config_keeps_the_structure_and_shrinks_the_cost():
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


def test_uncached_config_drops_only_the_cache():
    full = load_config("cifar10_best")
    assert full["cache"] is True and full["cache_variants"] >= 1  # the bundled config grows cached
    plain = uncached_config(full)
    assert full == load_config("cifar10_best")  # not modified
    assert "cache" not in plain and "cache_variants" not in plain
    assert plain == {key: value for key, value in full.items() if key not in ("cache", "cache_variants")}
    validate_config(plain)  # still a valid config, now grown through the trainer
    assert uncached_config(plain) == plain


# -- every block: keys, types and values named by their path (issue 23) -------------------------------------



def _assert_refused_naming_the_file(tmp_path, base, mutate, message):
    """Writes `base` changed by `mutate`; loading it must fail with `message`, prefixed by the file's path."""
    mutate(base)
    path = _write(tmp_path, base)
    with pytest.raises(ValueError, match=message) as info:
        load_config(path, full=False)
    assert str(info.value).startswith(f"{path}: ")

@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["dataset"].update(trian=1000),
         r"unknown keys \['dataset\.trian'\] \(did you mean 'train'\?\); dataset takes \['name', 'train', "),
        (lambda c: c["dataset"].update(train=None), r"dataset\.train must be a positive integer, got None"),
        (lambda c: c["dataset"].update(val=0), r"dataset\.val must be a positive integer, got 0"),
        (lambda c: c["dataset"].update(name="cifar"),
         r"dataset\.name: unknown name 'cifar' \(did you mean 'cifar10'\?\); expected one of \['hierarchical_digits'"),
        (lambda c: c["dataset"].update(options=[]), r"dataset\.options must be an object, got \[\]"),
        (lambda c: c["dataset"].update(options={"colour": True}),
         r"unknown keys \['dataset\.options\.colour'\]; dataset\.options of 'hierarchical_digits' takes \['noise'"),
        (lambda c: c["dataset"].update(options={"augment": True}),  # real datasets only
         r"unknown keys \['dataset\.options\.augment'\]; dataset\.options of 'hierarchical_digits'"),
        (lambda c: c["dataset"].update(name="cifar10", options={"normalise": "unit"}),
         r"unknown keys \['dataset\.options\.normalise'\] \(did you mean 'normalize'\?\)"),
        (lambda c: c["dataset"].update(name="cifar10", options={"normalize": "std"}),
         r"dataset\.options\.normalize must be one of \['unit', 'standardize', 'none'\], got 'std'"),
        (lambda c: c["dataset"].update(name="cifar10", options={"augment": "yes"}),
         r"dataset\.options\.augment must be true or false, got 'yes'"),
        (lambda c: c["dataset"].update(name="hierarchical", options={"level": 2}),
         r"unknown keys \['dataset\.options\.level'\] \(did you mean 'levels'\?\)"),
    ],
    ids=["dataset_typo", "train_null", "val_zero", "unknown_dataset", "options_list", "unknown_option",
         "augment_synthetic", "real_option_typo", "normalize_value", "augment_type", "hierarchical_option_typo"],
)
def test_dataset_block_is_checked_naming_the_path(tmp_path, base, mutate, message):
    _assert_refused_naming_the_file(tmp_path, base, mutate, message)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(datset=c.pop("dataset")), r"unknown keys \['datset'\] \(did you mean 'dataset'\?\)"),
        (lambda c: c.update(epochs=3, learning_rate=0.1),
         r"unknown keys \['epochs', 'learning_rate'\] \(did you mean 'stages\[i\]\.epochs' for 'epochs', "
         r"'optimizer\.config\.learning_rate' for 'learning_rate'\?\); the top level takes \['dataset', .*\]\. "
         r"Every key of every block is described in the docstring of layerwise_keras/runs/config\.py"),
        (lambda c: c.update(seed=-1), r"seed must be a non-negative integer, got -1"),
        (lambda c: c.update(seed="0"), r"seed must be a non-negative integer, got '0'"),
        (lambda c: c.update(cache="yes"), r"cache must be true or false, got 'yes'"),
        (lambda c: c.update(cache=True, cache_variants=0), r"cache_variants must be a positive integer, got 0"),
        (lambda c: c.update(cache=True, cache_variants=4),  # the base config is not augmented
         r"needs cache_variants, the augmented copies of each cached stage input \(e\.g\. 4\), and cache_variants "
         r"needs both"),
        (lambda c: c.update(name=3), r"name must be a string, got 3"),
        (lambda c: c.update(optimizer=5), r"optimizer must be a Keras optimizer name or an object"),
        (lambda c: c.update(optimizer={"config": {}}), r"optimizer\.class_name must name a Keras optimizer class"),
        (lambda c: c["optimizer"].update(clas_name="SGD"),
         r"unknown keys \['optimizer\.clas_name'\] \(did you mean 'class_name'\?\)"),
        (lambda c: c["optimizer"].update(config=[0.1]), r"optimizer\.config must be an object, got \[0\.1\]"),
    ],
    ids=["top_level_typo", "keras_habits", "seed_negative", "seed_string", "cache", "cache_variants_zero",
         "cache_variants_unaugmented", "name", "optimizer_type",
         "no_class_name", "optimizer_typo", "optimizer_config_list"],
)
def test_top_level_and_optimizer_blocks_are_checked_naming_the_path(tmp_path, base, mutate, message):
    _assert_refused_naming_the_file(tmp_path, base, mutate, message)


@pytest.mark.parametrize(
    "optimizer, message",
    [
        ({"class_name": "Adam", "config": {"learnin_rate": 0.1}},
         r"unknown keys \['optimizer\.config\.learnin_rate'\] \(did you mean 'learning_rate'\?\); "
         r"optimizer\.config of Adam takes \['learning_rate', 'beta_1', .*'weight_decay', 'clipnorm'"),
        ({"class_name": "SGD", "config": {"beta_1": 0.9}},  # an Adam argument: SGD has momentum
         r"unknown keys \['optimizer\.config\.beta_1'\]; optimizer\.config of SGD takes \['learning_rate', 'momentum'"),
        ({"class_name": "Adamm"},
         r"optimizer\.class_name: unknown optimizer 'Adamm' \(did you mean 'Adam'\?\); Keras has \[.*'SGD'"),
        ("sgdd", r"optimizer: unknown optimizer 'sgdd' \(did you mean 'SGD'\?\)"),
    ],
)
def test_optimizer_class_and_config_keys_are_checked_with_keras(base, optimizer, message):
    base["optimizer"] = optimizer
    check_config(base, source="mine.json")  # no Keras: only the block's own keys
    with pytest.raises(ValueError, match=message) as info:
        validate_config(base, source="mine.json")
    assert str(info.value).startswith("mine.json: ")


def test_keras_optimizer_spellings_are_accepted(base):
    import keras

    for optimizer in ("adam", "SGD", {"class_name": "adamw", "config": {"learning_rate": 1e-3, "weight_decay": 0.01}},
                      keras.optimizers.serialize(keras.optimizers.SGD(learning_rate=0.1, momentum=0.9))):
        assert validate_config(dict(base, optimizer=optimizer))["optimizer"] == optimizer


def test_check_config_normalises_integral_numbers_and_keeps_stages_as_written(base):
    base["dataset"]["train"] = 300.0
    base["seed"] = 2.0
    config = check_config(base)
    assert config["dataset"]["train"] == 300 and type(config["dataset"]["train"]) is int
    assert type(config["seed"]) is int
    assert config["stages"] == base["stages"]  # validate_config is what expands them to full Stage configs


def test_bundled_configs_by_dataset():
    assert bundled_configs(dataset="cifar10") == ["cifar10_best", "cifar10_paper", "cifar10_stacked"]
    assert bundled_configs(dataset="hierarchical") == ["hierarchical_2level", "hierarchical_3level"]
    assert bundled_configs(dataset="mnist") == []


# -- the schema follows the code it describes ---------------------------------------------------------------


def test_stage_schema_matches_stage_fields_and_choices():
    import dataclasses
    import inspect

    from layerwise_keras.clustering.kmeans import KMeans
    from layerwise_keras.growth import stage as stage_module
    from layerwise_keras.growth.kinds import ASSIGNMENTS

    types = config_module.STAGE_TYPES
    assert list(types) == [f.name for f in dataclasses.fields(Stage)]
    assert types["assignment"] == ASSIGNMENTS and types["readout"] == stage_module.READOUTS
    assert types["cluster"] == stage_module.CLUSTER_SOURCES and types["handoff"] == stage_module.HANDOFFS
    assert types["schedule"] == stage_module.SCHEDULES
    assert set(config_module.KMEANS_KEYS) == set(inspect.signature(KMeans).parameters) - {"n_clusters"}
    check_config(dict(load_config("hierarchical_digits"), stages=[Stage(8).get_config()]))  # every default passes


def test_dataset_schema_matches_the_generators_and_splits():
    import inspect

    from layerwise_keras.datasets import generative, real, splits

    options = config_module.DATASET_OPTIONS
    assert set(options) == {"hierarchical_digits", "hierarchical", *splits.REAL_DATASETS}
    digits = set(inspect.signature(generative.hierarchical_digits).parameters) - {"n", "seed"}  # given by load_splits
    assert set(options["hierarchical_digits"]) == digits
    assert set(options["hierarchical"]) == set(inspect.signature(generative.HierarchicalModel).parameters)
    assert config_module.REAL_OPTIONS == splits.REAL_OPTIONS
    assert set(config_module.REAL_OPTION_TYPES) == set(splits.REAL_OPTIONS)
    assert config_module.REAL_OPTION_TYPES["normalize"] == real.NORMALIZATIONS


def test_module_docstring_describes_every_key_of_every_block():
    doc = config_module.__doc__
    keys = {*config_module.REQUIRED, *config_module.OPTIONAL, *config_module.DATASET_KEYS,
            *(k for opts in config_module.DATASET_OPTIONS.values() for k in opts), *config_module.STAGE_TYPES,
            *config_module.KMEANS_KEYS, *config_module.OPTIMIZER_KEYS}
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, missing


def test_check_config_imports_neither_keras_nor_tensorflow(fresh_python, tmp_path):
    # The module copy the CLI uses before TensorFlow (the package `runs` imports the pipeline).
    script = (
        "import sys\n"
        "from layerwise_keras import cli\n"
        "module = cli._config_module()\n"
        "for name in module.bundled_configs():\n"
        "    module.load_config(name, full=False)\n"
        "config = module.load_config('hierarchical_digits', full=False)\n"
        "config['dataset']['trian'] = 3\n"
        "try:\n"
        "    module.check_config(config, source='x')\n"
        "except ValueError as err:\n"
        "    print(err)\n"
        "print('imported', 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    proc = fresh_python(script, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "x: unknown keys ['dataset.trian'] (did you mean 'train'?)" in proc.stdout
    assert proc.stdout.strip().endswith("imported False False"), proc.stdout


def test_smoke_config_trains_one_epoch_per_stage_even_for_step_budgets():
    small = smoke_config(load_config("hierarchical_digits"), train=128, val=32, test=32)
    assert all(s["epochs"] == 1 and s.get("steps") is None and s.get("patience") is None for s in small["stages"])
    validate_config(small)
