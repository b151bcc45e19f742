"""Imports run one way: `data_prep` (the converter) may use `ienet_jax`, never the reverse,
and the input pipeline (`ienet_jax.data`) never imports the models."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The quickstart is the one orchestration that runs the converter (synthesize → convert →
# train → evaluate) as a program; no library module may reach into data_prep.
ORCHESTRATION = {"ienet_jax/quickstart.py"}


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _importers(folder: str, prefix: str, skip=()) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        bad = [m for m in _imports(path) if m == prefix or m.startswith(prefix + ".")]
        if bad and rel not in skip:
            found.append(f"{rel}: {sorted(bad)}")
    return found


def test_the_library_never_imports_data_prep():
    assert _importers("ienet_jax", "data_prep", ORCHESTRATION) == []


def test_the_input_pipeline_never_imports_the_models():
    assert _importers("ienet_jax/data", "ienet_jax.models") == []


def test_predict_and_the_pipeline_load_without_data_prep_or_the_models():
    code = (
        "import sys\n"
        "import ienet_jax.data.normalize, ienet_jax.data.pipeline, ienet_jax.data.source\n"
        "assert not [m for m in sys.modules if m.startswith('ienet_jax.models')], 'models'\n"
        "import ienet_jax.predict, ienet_jax.video.face_video\n"
        "assert not [m for m in sys.modules if m.startswith('data_prep')], 'data_prep'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
