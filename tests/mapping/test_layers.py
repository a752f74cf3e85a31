"""The mapping layer imports only the layers below it: the domain and the terminology."""

from __future__ import annotations

import ast
from pathlib import Path

import fhir_cm.mapping

FORBIDDEN = ("store", "fhir", "sync", "cli", "api")


def test_mapping_imports_neither_store_nor_client_nor_sync_nor_cli_nor_api() -> None:
    package = Path(fhir_cm.mapping.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        depth = len(path.relative_to(package).parts)  # 1 = directly in mapping/, 2 = in a sub-package
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ""
                if node.level:  # relative: resolve against fhir_cm
                    up = node.level - depth
                    name = name if up > 0 else f"mapping.{name}"
                else:
                    name = name.removeprefix("fhir_cm.") if name.startswith("fhir_cm.") else ""
                names = [name]
            elif isinstance(node, ast.Import):
                names = [a.name.removeprefix("fhir_cm.") for a in node.names if a.name.startswith("fhir_cm.")]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
