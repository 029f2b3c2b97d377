"""The runtime serves any project: it never imports the bundled examples."""

import re
from pathlib import Path

RUNTIME = Path(__file__).resolve().parent.parent
EXAMPLE_PACKAGES = ("chat", "chatsite", "liveboard", "location", "sensors")


def test_the_runtime_never_imports_an_example_project():
    pattern = re.compile(rf"^\s*(?:from|import)\s+({'|'.join(EXAMPLE_PACKAGES)})\b", re.MULTILINE)
    found = {str(path.relative_to(RUNTIME)): pattern.findall(path.read_text())
             for path in RUNTIME.rglob("*.py")}
    assert {path: names for path, names in found.items() if names} == {}
    assert len(found) > 20  # the walk saw the package
