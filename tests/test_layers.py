"""The code's shape: stage folders that import only the stages below them, and modules a reader can hold."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "src" / "azchat"
ORDER = ["", "notes", "index", "search", "answer", "apps"]     # "" = the root modules (types, config, errors, ...)
MAX_LINES = 400


def _layer(module: str) -> int:
    """The stage of a dotted module inside azchat ("index.store" -> index; "types" -> the root)."""
    head = module.split(".")[0]
    return ORDER.index(head) if head in ORDER else 0


def _imports(path: Path, pkg: Path) -> list[tuple[int, str]]:
    """(line, dotted azchat module) of every import of azchat code in the file, lazy ones included."""
    package = list(path.relative_to(pkg).parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [".".join(base + [a.name]) for a in node.names]
            elif node.module and node.module.startswith("azchat."):
                names = [node.module[len("azchat."):]]
            else:
                continue
            out += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name[len("azchat."):]) for a in node.names if a.name.startswith("azchat.")]
    return out


def upward_imports(pkg: Path = PKG) -> list[str]:
    found = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        if rel.parts[0] in ("__init__.py", "__main__.py", "generate.py"):
            continue     # the package's public names, `python -m azchat`, the deprecation shim: entry points
        own = _layer(".".join(rel.with_suffix("").parts))
        for line, target in _imports(path, pkg):
            if _layer(target) > own:
                found.append(f"{rel}:{line} imports {target} ({ORDER[_layer(target)]} is above "
                             f"{ORDER[own] or 'the root'})")
    return found


def test_each_stage_imports_only_the_stages_below_it():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path):
    """A copy of the package with one upward import (the index reaching into the answer layer) is caught."""
    import shutil

    copy = tmp_path / "azchat"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    store = copy / "index" / "store.py"
    store.write_text(store.read_text(encoding="utf-8") + "\n\ndef _x():\n    from ..answer import extractive\n",
                     encoding="utf-8")
    assert [f for f in upward_imports(copy) if f.startswith("index/store.py")]


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
