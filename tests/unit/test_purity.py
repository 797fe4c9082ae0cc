"""controllers/ and forecasts/ are pure computation.

The layer contract (``.importlinter``, run by ``./test.sh`` and by
``tests/integration/test_layers.py``) forbids them every edge library and every higher layer.
What a static import graph cannot see is checked here: no file opened, and no module imported
by name at run time (which would hide an edge import from the contract).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DYNAMIC = {"import_module", "__import__", "open"}


def _calls(pkg: str, root: Path = ROOT) -> list[str]:
    hits = []
    for path in sorted((root / pkg).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
            if name in DYNAMIC:
                hits.append(f"{path.relative_to(root)}:{node.lineno}: {name}()")
    return hits


def test_pure_packages_open_no_file_and_import_nothing_by_name():
    assert _calls("controllers") + _calls("forecasts") == []


def test_the_check_sees_a_call_it_forbids(tmp_path):
    bad = tmp_path / "controllers"
    bad.mkdir()
    (bad / "leak.py").write_text("import importlib\nimportlib.import_module('sqlalchemy')\n")
    (bad / "read.py").write_text("with open('x.csv') as f:\n    pass\n")
    assert _calls("controllers", tmp_path) == [
        "controllers/leak.py:2: import_module()",
        "controllers/read.py:1: open()",
    ]
