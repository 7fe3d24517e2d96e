"""The package layout: imports go one way between layers, no import circles, no long modules.

The graph is read from the source with ``ast`` (every ``import`` statement, at
module level or inside a function), so a local import cannot hide a circle.
An edge goes to the module a statement names: ``from rescorer.lm import model``
is an edge to ``rescorer.lm.model``, ``from rescorer.lm.model import LSTMLM``
to ``rescorer.lm.model``; relative imports are resolved against the file's
package.  Importing a submodule also runs its package's ``__init__``, but the
package ``__init__`` files of the layers hold only a docstring, so those
implicit edges are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

import rescorer

PACKAGE_DIR = Path(rescorer.__file__).parent
MAX_LINES = 400

# layer -> rank; a module may import modules of its own rank or lower
RANKS = {"top": 0, "lm": 1, "quant": 2, "ngram": 2, "pack": 2, "scoring": 2,
         "train": 3, "report": 3, "synth": 3, "nbest": 3, "cli": 4, "entry": 5}
TOP_LEVEL = {"errors", "fileio", "perplexity", "progress", "settings", "timing"}
# layers that deployment (loading and scoring) needs: never training code
NO_TRAINING = {"lm", "pack", "ngram", "nbest", "scoring"}
TRAINING = {"train", "quant"}


def module_files(package_dir: Path, name: str) -> Dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` below ``package_dir`` (``__init__`` names the package)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(package_dir: Path, name: str) -> Dict[str, Set[str]]:
    """Module -> the package's modules it imports."""
    files = module_files(package_dir, name)
    graph: Dict[str, Set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_package = path.name == "__init__.py"
        package = mod.split(".") if is_package else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [_known(a.name, files) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for a in node.names:
                    sub = f"{source}.{a.name}"
                    targets.append(sub if sub in files else _known(source, files))
            graph[mod].update(t for t in targets if t and t != mod)
    return graph


def _known(dotted: str, files: Dict[str, Path]) -> Optional[str]:
    """The longest prefix of ``dotted`` that is one of the package's modules."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in files:
            return ".".join(parts[:n])
    return None


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import circle as ``[a, b, ..., a]``, or None."""
    state: Dict[str, int] = {}  # 1 on the stack, 2 done
    stack: List[str] = []

    def visit(m: str) -> Optional[List[str]]:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def layer(mod: str) -> str:
    parts = mod.split(".")[1:]
    if not parts or parts[0] in TOP_LEVEL:
        return "top"
    if parts[0] == "__main__":
        return "entry"
    return parts[0]


def layer_violations(graph: Dict[str, Set[str]]) -> List[str]:
    bad = []
    for src, dsts in sorted(graph.items()):
        for dst in sorted(dsts):
            a, b = layer(src), layer(dst)
            if a in NO_TRAINING and b in TRAINING:
                bad.append(f"{src} ({a}) imports training code {dst}")
            elif RANKS[b] > RANKS[a]:
                bad.append(f"{src} ({a}) imports {dst} from the higher layer {b}")
    return bad


GRAPH = import_graph(PACKAGE_DIR, "rescorer")


def test_every_module_is_in_a_known_layer():
    unknown = sorted(m for m in GRAPH if layer(m) not in RANKS)
    assert not unknown, f"modules outside the layers of tests/test_layout.py: {unknown}"


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_imports_go_down_the_layers():
    bad = layer_violations(GRAPH)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_module_over_the_house_limit():
    long = {m: n for m, p in module_files(PACKAGE_DIR, "rescorer").items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_graph_sees_real_edges():
    # the walker must find what the code imports, or the checks above pass vacuously
    assert "rescorer.lm.model" in GRAPH["rescorer.lm.scoring"]
    assert "rescorer.pack.checkpoint" in GRAPH["rescorer.pack.lm_file"]
    assert "rescorer.lm.kernel_step" in GRAPH["rescorer.lm.scoring"]  # an import inside a function
    assert "rescorer.perplexity" in GRAPH["rescorer.ngram.interpolate"]  # a top-level helper
    assert "rescorer.quant" in GRAPH["rescorer.train.import_rnnmodel"]  # why it is training, not pack/
    assert sum(len(v) for v in GRAPH.values()) > 150


def test_checks_catch_circles_and_upward_imports(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "lm").mkdir(parents=True)
    (pkg / "train").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "lm" / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "lm" / "a.py").write_text("from . import b\n")
    (pkg / "lm" / "b.py").write_text("def f():\n    from ..lm.a import x\n")  # local import, relative
    (pkg / "lm" / "c.py").write_text("import toy.train.loop\n")
    (pkg / "train" / "loop.py").write_text("from toy.lm import c\n")
    graph = import_graph(pkg, "toy")
    assert graph["toy.lm.a"] == {"toy.lm.b"}
    assert graph["toy.lm.b"] == {"toy.lm.a"}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) >= {"toy.lm.a", "toy.lm.b"}
    bad = layer_violations({k.replace("toy", "rescorer", 1): {v.replace("toy", "rescorer", 1) for v in vs}
                            for k, vs in graph.items()})
    assert bad == ["rescorer.lm.c (lm) imports training code rescorer.train.loop"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def imported_roots(path: Path) -> Set[str]:
    """The top-level names ``path`` imports (``from tests.x import y`` -> ``tests``), at any depth."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_benchmarks_do_not_import_the_tests(tmp_path):
    # bench/ runs without the test suite: what it shares with the tests lives in bench/ or the package
    bench = sorted((PACKAGE_DIR.parent / "bench").glob("*.py"))
    assert len(bench) >= 5
    bad = [p.name for p in bench if imported_roots(p) & {"tests", "conftest"}]
    assert not bad, f"bench/ modules that import from tests/: {bad}"
    toy = tmp_path / "toy.py"
    toy.write_text("def f():\n    from tests.packed_models import quantize_model\n")
    assert imported_roots(toy) == {"tests"}
