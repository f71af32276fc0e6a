"""The import graph of the installed package follows the layers of docs/layout.md, with no cycle."""

import ast
import re
from pathlib import Path

import pytest

import l3ic

LAYOUT = Path(__file__).resolve().parents[1] / "docs" / "layout.md"
HEAVY = {"keras", "tensorflow", "jax", "torch"}
NO_HEAVY_UP_TO = 3  # layers 0..3 import none of HEAVY


def layers() -> dict[str, int]:
    """{module: layer} from the table of docs/layout.md."""
    table = {}
    for line in LAYOUT.read_text().splitlines():
        match = re.match(r"\| (\d+) \| [^|]+ \| ([^|]+) \|", line)
        if match:
            for module in re.findall(r"`([\w.]+)`", match.group(2)):
                assert module not in table, f"{module} listed twice in {LAYOUT}"
                table[module] = int(match.group(1))
    return table


def _in_main_block(node: ast.If) -> bool:
    test = node.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _module_of(target: list[str], modules: set[str]) -> str:
    """The module of ``modules`` that the dotted path ``target`` (below l3ic) names or lies in:
    the longest prefix that is a module; a package's ``__init__`` is the package's name."""
    for end in range(len(target), 0, -1):
        name = ".".join(target[:end])
        if name in modules:
            return name
    return "__init__"


def imports(path: Path, package: list[str], modules: set[str]) -> tuple[set[str], set[str]]:
    """(package modules, heavy external packages) that ``path``, a module of the sub-package
    ``package`` of l3ic ([] for l3ic itself), imports anywhere, except in an
    ``if __name__ == "__main__":`` block."""
    inner, heavy = set(), set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _in_main_block(node):
            return
        if isinstance(node, ast.ImportFrom) and (node.level >= 1 or node.module):
            parts = node.module.split(".") if node.module else []
            if node.level >= 1:
                base = package[: len(package) - (node.level - 1)] + parts
            elif parts[0] == "l3ic":
                base = parts[1:]
            else:
                heavy.update({parts[0]} & HEAVY)
                return
            for alias in node.names:  # from . import container: the module container
                inner.add(_module_of([*base, alias.name], modules))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "l3ic" and len(parts) > 1:
                    inner.add(_module_of(parts[1:], modules))
                heavy.update({parts[0]} & HEAVY)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return inner, heavy


def module_name(path: Path, root: Path) -> str:
    """``datasets/convert.py`` -> ``datasets.convert``; a sub-package's ``__init__.py`` is the
    sub-package's name, l3ic's own is ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


@pytest.fixture(scope="module")
def graph() -> dict[str, tuple[set[str], set[str]]]:
    root = Path(l3ic.__file__).parent
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    return {
        name: imports(path, list(path.relative_to(root).parts[:-1]), set(files))
        for name, path in files.items()
    }


def test_every_module_has_a_layer(graph):
    assert set(graph) == set(layers()), "docs/layout.md and the package disagree"


def test_imports_go_down_the_layers(graph):
    order = layers()
    upward = [
        f"{module} (layer {order[module]}) imports {target} (layer {order[target]})"
        for module, (inner, _) in graph.items()
        for target in inner - {module}
        if order[target] > order[module]
    ]
    assert upward == []


def test_lower_layers_import_no_deep_learning_framework(graph):
    order = layers()
    heavy = {m: sorted(h) for m, (_, h) in graph.items() if order[m] <= NO_HEAVY_UP_TO and h}
    assert heavy == {}


def test_no_import_cycles(graph):
    edges = {m: inner - {m} for m, (inner, _) in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_imports_in_functions_count_and_main_blocks_do_not(tmp_path):
    (tmp_path / "low.py").write_text("from .high import x\n")
    (tmp_path / "high.py").write_text(
        "def f():\n    from . import low\n\nif __name__ == '__main__':\n    from .cli import main\n"
    )
    modules = {"low", "high", "cli"}
    assert imports(tmp_path / "low.py", [], modules) == ({"high"}, set())
    assert imports(tmp_path / "high.py", [], modules) == ({"low"}, set())


def test_imports_resolve_across_sub_packages(tmp_path):
    (tmp_path / "shards.py").write_text(
        "from .. import container\nfrom ..image import read\nfrom .convert import x\n"
        "from l3ic.training import loop\nimport keras\n"
    )
    modules = {"container", "image", "datasets", "datasets.convert", "training", "training.loop"}
    assert imports(tmp_path / "shards.py", ["datasets"], modules) == (
        {"container", "image", "datasets.convert", "training.loop"},
        {"keras"},
    )
