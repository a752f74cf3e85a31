"""The layer contracts in pyproject.toml (import-linter) hold, and they bite on an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")

pytestmark = pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed (the test extra has it)")


def lint_imports(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_the_package(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "fhir_cm", src / "fhir_cm", ignore=shutil.ignore_patterns("__pycache__"))
    config = tmp_path / "pyproject.toml"
    shutil.copyfile(ROOT / "pyproject.toml", config)
    return src, config


def test_the_layer_contracts_hold(tmp_path: Path) -> None:
    src, config = copy_of_the_package(tmp_path)
    result = lint_imports(src, config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The relative form the old AST test of the mapping layer missed.
        ("mapping/_case.py", "from .. import store as _store", "layers"),
        ("domain/_case.py", "from fhir_cm.sync import pull as _pull", "layers"),
        ("fhir/_urls.py", "from .. import mapping as _mapping", "fhir (the transport)"),
    ],
)
def test_an_upward_import_breaks_a_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    src, config = copy_of_the_package(tmp_path)
    path = src / "fhir_cm" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa: E402\n", encoding="utf-8")
    result = lint_imports(src, config)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and broken in result.stdout.split("Broken contracts")[-1]
