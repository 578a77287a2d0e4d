"""The package's layout keeps its promises: the teaching core stands alone, modules stay small, imports stay cheap."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "scratchnst"
CORE = ("network", "method")  # the teaching core
MACHINERY = ("transfer", "inside", "files", "cli")  # what the core must not import
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported_modules(path, root=PACKAGE):
    """Absolute names of every module ``path`` imports, at any depth of its code (relative imports resolved)."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_imported_modules_sees_every_kind_of_import(tmp_path):
    """The checker itself: absolute, from, relative and function-level imports are all found."""
    mod = tmp_path / "scratchnst" / "network" / "probe.py"
    mod.parent.mkdir(parents=True)
    mod.write_text("import scratchnst.files.images\nfrom ..cli import main\n"
                   "def f():\n    from scratchnst import inside\n")
    found = imported_modules(mod, root=tmp_path / "scratchnst")
    assert "scratchnst.files.images" in found
    assert "scratchnst.cli.main" in found
    assert "scratchnst.inside" in found


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in CORE],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_teaching_core_imports_no_machinery(path):
    bad = [name for name in imported_modules(path)
           if any(name == f"scratchnst.{m}" or name.startswith(f"scratchnst.{m}.") for m in MACHINERY)]
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_modules_are_at_most_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := p.read_text().count("\n")) > 400}
    assert not long, long


def test_folders_are_at_most_two_levels_deep():
    deep = [p for p in MODULES if len(p.relative_to(PACKAGE).parts) > 3]  # folder/subfolder/module.py
    assert not deep, deep


def test_import_scratchnst_loads_no_heavy_package():
    """``import scratchnst`` and the command line's start load neither matplotlib, tqdm, Pillow nor h5py."""
    code = ("import sys, scratchnst, scratchnst.cli.main; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'tqdm', 'PIL', 'h5py'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api_resolves():
    """Every name of ``scratchnst.__all__`` imports, through the lazy table."""
    import scratchnst

    for name in scratchnst.__all__:
        assert getattr(scratchnst, name) is not None, name
    with pytest.raises(AttributeError):
        scratchnst.no_such_name  # noqa: B018
