"""The package's structure: subpackages by concern, imports in one direction only, no cycles.

Reads every module's imports with `ast` (imports inside functions included),
so a cycle hidden in a function-level import fails here too.
`docs/architecture.md` explains the layers below.
"""

import ast
import os

import layerwise_keras as lk

PACKAGE = os.path.dirname(os.path.abspath(lk.__file__))

# Lower layers never import higher ones (a module may import its own layer and those below).
LAYERS = [
    {"compat", "lazy", "saving"},
    {"datasets"},
    {"clustering"},
    {"growth"},
    {"registration"},
    {"export"},
    {"monitoring"},
    {"runs"},
    {"tuning"},
    {"cli"},
]
# The only modules that import TensorFlow (or TensorBoard) at module level.
TENSORFLOW_MODULES = {"clustering.distribute_tf", "growth.cached", "growth.stage_inputs", "monitoring.tensorboard"}


def _modules():
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py") and name != "conftest.py":  # conftest: the doctests' fixtures, not a module
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
                found[rel.removesuffix(".__init__") if rel != "__init__" else ""] = path
    return found


def _imports(path, top_level_only=False):
    tree = ast.parse(open(path).read())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _graph():
    modules = _modules()
    graph = {m: set() for m in modules}
    for module, path in modules.items():
        for target, names in _imports(path):
            if not target.startswith("layerwise_keras"):
                continue
            rel = target[len("layerwise_keras"):].lstrip(".")
            # `from pkg import submodule` depends on the submodule; `from pkg import name` on the package.
            submodules = [f"{rel}.{n}".lstrip(".") for n in names if f"{rel}.{n}".lstrip(".") in modules]
            for candidate in submodules or [rel]:
                if candidate in modules and candidate != module and candidate:
                    graph[module].add(candidate)
    return graph


def _layer(module):
    top = module.split(".")[0]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"module {module!r} belongs to no layer; add its subpackage to LAYERS and the docs")


def test_every_subpackage_has_a_layer_and_the_public_ones_load_lazily():
    for module in _modules():
        if module:
            _layer(module)
    for name in ("datasets", "clustering", "growth", "export", "monitoring", "runs", "tuning"):
        assert getattr(lk, name).__name__ == f"layerwise_keras.{name}"


def test_imports_point_down_the_layers_only():
    wrong = [
        f"{module} -> {target}"
        for module, targets in _graph().items() if module
        for target in targets
        if target and _layer(target) > _layer(module)
    ]
    assert not wrong, wrong


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_tensorflow_is_imported_at_module_level_only_by_the_tensorflow_only_modules():
    tf_only = {f"layerwise_keras.{m}" for m in TENSORFLOW_MODULES}
    offenders = []
    for module, path in _modules().items():
        if module in TENSORFLOW_MODULES:
            continue
        for target, names in _imports(path, top_level_only=True):
            pulled = {target} | {f"{target}.{n}" for n in names}
            if target.split(".")[0] in ("tensorflow", "tensorboard") or pulled & tf_only:
                offenders.append(f"{module} imports {target}")
    assert not offenders, offenders  # the rest of the core must import without TensorFlow (JAX-only machines)


def test_public_submodules_load_on_first_use_in_a_fresh_process(fresh_python, tmp_path):
    script = ("import sys; import layerwise_keras as lk; "
              "assert 'layerwise_keras.datasets' not in sys.modules; "
              "lk.datasets.HierarchicalModel; lk.export.to_portable_model; lk.runs.load_config; lk.growth.Stage; "
              "lk.clustering.KMeans; lk.monitoring.receptive_field; lk.Stage; lk.KMeans; print('ok')")
    result = fresh_python(script, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_no_module_imports_another_modules_underscore_names():
    """What modules share is public in its module: no `from layerwise_keras.x import _name` (benchmarks included)."""
    root = os.path.dirname(PACKAGE)
    paths = list(_modules().values())
    for folder, _, files in os.walk(os.path.join(root, "benchmarks")):
        paths += [os.path.join(folder, f) for f in files if f.endswith(".py")]
    reach_ins = []
    for path in paths:
        for target, names in _imports(path):
            if target.startswith("layerwise_keras"):
                reach_ins += [f"{os.path.relpath(path, root)}: {target}.{n}" for n in names
                              if n.startswith("_") and not n.startswith("__")]
    assert reach_ins == []
