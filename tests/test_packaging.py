"""environment.yml (conda) and pyproject.toml (pip) describe the same dependencies; the layout is complete."""

import re
import tomllib

from conftest import REPO

CONDA_NAMES = {"pytorch": "torch"}


def _name(spec: str) -> str:
    name = re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower()
    return CONDA_NAMES.get(name, name)


def test_conda_and_pip_list_the_same_packages():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip = {_name(s) for s in project["dependencies"] + sum(project["optional-dependencies"].values(), [])}
    conda = set()
    text = (REPO / "environment.yml").read_text()
    for line in text[text.index("dependencies:"):].splitlines():
        m = re.match(r"^\s{2}- ([A-Za-z0-9_.\-]+.*)$", line)
        if m and not line.strip().startswith("- pip:"):
            conda.add(_name(m.group(1)))
    conda -= {"python", "pip"}
    assert pip == conda


def test_layout_and_entry_points_exist():
    for path in ("core", "explorer", "apps", "notebooks", "tests", "benchmarks", "docs", "environment.yml",
                 "pyproject.toml", "README.md", ".ci/run", "Makefile", "docs/run-directory.md"):
        assert (REPO / path).exists(), path
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_core_never_imports_a_ui_library():
    ui = re.compile(r"^\s*(import|from)\s+(panel|holoviews|bokeh|ipywidgets|explorer|umap|openTSNE)\b", re.M)
    offenders = [p.name for p in (REPO / "core").rglob("*.py") if ui.search(p.read_text())]
    assert offenders == []


def test_torch_load_is_always_weights_only():
    for p in list((REPO / "core").rglob("*.py")) + list((REPO / "explorer").rglob("*.py")):
        text = p.read_text()
        for start in [m.end() for m in re.finditer(r"torch\.load\(", text)]:
            depth, end = 1, start
            while depth:
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            assert "weights_only=True" in text[start:end], f"{p.name}: torch.load({text[start:end]}"
