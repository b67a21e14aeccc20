"""Static checks of the Slicer layer (3D Slicer cannot run in CI).

Module shape, CMake lists vs the tree, .ui names vs the code and the parameter node, the offline
Slicer API contract checker, the import boundary of the core, and requirements.txt vs pyproject.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "NACResponse"
MODULE_PY = MODULE_DIR / "NACResponse.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "NACResponse.ui"
CHECKER = ROOT.parent / "shared" / "slicer-api" / "check.py"
SLICER_MODULES = {"slicer", "vtk", "qt", "ctk", "vtkITK", "vtkTeem", "sitkUtils", "slicerqt", "PythonQt", "mrml"}
#: NACResponseSlicerLib files that must import (and be unit-tested) without Slicer.
SLICER_FREE = ["cli_runner", "cli_calls", "context", "dependencies", "evaluation_curves", "ijk_ras", "mc_points",
               "mc_results", "naming", "prediction_text", "recist_lines", "reloading", "staging", "table_data",
               "table_export", "case_report"]
PANELS = ("study", "session", "segmentation", "features", "prediction", "mc")
#: Widget-side modules: the only ones of NACResponseSlicerLib that may import qt, ctk or slicer.i18n.
WIDGET_SIDE = {f"{name}_panel" for name in PANELS} | {"panel_base", "widgets", "qt_runner", "path_connector"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _module_py_files() -> list[str]:
    """Every .py the extension ships (relative to NACResponse/), tests excluded."""
    out = []
    for p in sorted(MODULE_DIR.rglob("*.py")):
        rel = p.relative_to(MODULE_DIR)
        if rel.parts[0] in ("Testing",) or "__pycache__" in rel.parts or rel.parts[0].endswith(".egg-info"):
            continue
        out.append(rel.as_posix())
    return out


def _module_resources() -> list[str]:
    out = [p.relative_to(MODULE_DIR).as_posix() for p in sorted((MODULE_DIR / "Resources").rglob("*")) if p.is_file()]
    lib = MODULE_DIR / "NACResponseLib"
    out += [p.relative_to(MODULE_DIR).as_posix() for p in sorted(lib.rglob("*"))
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    return out


def _cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s(.*?)\)", text, re.S)
    assert match, f"{variable} not set in NACResponse/CMakeLists.txt"
    items = []
    for line in match.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            items.append(line.replace("${MODULE_NAME}", "NACResponse"))
    return items


# ---- module shape -------------------------------------------------------------------------------

def test_exactly_one_top_level_python_file():
    assert sorted(p.name for p in MODULE_DIR.glob("*.py")) == ["NACResponse.py"]


def test_module_classes_and_parameter_node():
    tree = _tree(MODULE_PY)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for name in ("NACResponse", "NACResponseWidget", "NACResponseLogic", "NACResponseTest", "NACResponseParameterNode"):
        assert name in classes, f"NACResponse.py lacks class {name}"
    decorators = [d.id for d in classes["NACResponseParameterNode"].decorator_list if isinstance(d, ast.Name)]
    assert decorators == ["parameterNodeWrapper"]
    fields = {n.target.id for n in classes["NACResponseParameterNode"].body if isinstance(n, ast.AnnAssign)}
    for wanted in ("studyFolder", "patientId", "timepointA", "timepointB", "readerId", "sessionName", "modelFile",
                   "settings"):
        assert wanted in fields
    module_init = next(f for f in classes["NACResponse"].body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    assigned = {t.attr for n in ast.walk(module_init) if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Attribute)}
    assert {"title", "categories", "contributors", "helpText", "acknowledgementText"} <= assigned


def test_module_file_stays_thin():
    lines = MODULE_PY.read_text().count("\n")
    assert lines <= 170, f"NACResponse.py has {lines} lines; move logic to NACResponseSlicerLib"


def test_every_panel_is_a_logic_object_and_a_panel_object_composed_apart():
    """Each panel: ``<name>_logic.py`` has one ``...Logic`` taking the shared context (no widgets, no Qt,
    no i18n); ``<name>_panel.py`` has one ``...Panel`` built around an injected logic; panels.py and
    widgets.py compose them (no mixins)."""
    lib = MODULE_DIR / "NACResponseSlicerLib"
    panels, widgets = (lib / "panels.py").read_text(), (lib / "widgets.py").read_text()
    for name in PANELS:
        logic_tree, panel_tree = _tree(lib / f"{name}_logic.py"), _tree(lib / f"{name}_panel.py")
        logic = [n for n in logic_tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Logic")]
        panel = [n for n in panel_tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Panel")]
        assert len(logic) == 1 and len(panel) == 1, name
        assert [b.id for b in panel[0].bases if isinstance(b, ast.Name)] == ["Panel"], name
        assert not logic[0].bases, f"{logic[0].name} must not inherit (composed, not mixed in)"
        assert f"self.{name} = {logic[0].name}(self.context)" in panels
        assert f"{panel[0].name}(ui, logic.{name}, self.tasks, parameterNode" in widgets
        logic_source = (lib / f"{name}_logic.py").read_text()
        assert "self.ui" not in logic_source, f"{logic[0].name} must not touch widgets"


def test_logic_side_imports_neither_qt_nor_i18n():
    """Everything but the widget side imports without Qt, so CI runs it on real MRML."""
    offenders = []
    for path in sorted((MODULE_DIR / "NACResponseSlicerLib").glob("*.py")):
        if path.stem in WIDGET_SIDE:
            continue
        for node in ast.walk(_tree(path)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in ("qt", "ctk") or n == "slicer.i18n"]
    assert offenders == []


def test_module_lists_the_modules_it_depends_on():
    tree = _tree(MODULE_PY)
    module_init = next(f for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "NACResponse"
                       for f in c.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    assigned = next(n.value for n in ast.walk(module_init) if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Attribute) and t.attr == "dependencies" for t in n.targets))
    dependencies = ast.literal_eval(assigned)
    assert {"Units", "Segmentations", "Markups", "Tables", "Plots", "SubjectHierarchy"} <= set(dependencies)


def test_path_fields_are_strings_so_unset_paths_stay_empty():
    """Slicer binds ctkPathLineEdit to pathlib.Path, whose unset value shows as "."."""
    tree = _tree(MODULE_PY)
    node = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "NACResponseParameterNode")
    fields = {n.target.id: ast.unparse(n.annotation) for n in node.body if isinstance(n, ast.AnnAssign)}
    for name in ("studyFolder", "segModelFolder", "deepWeightsFile", "modelFile"):
        assert fields[name] == "str", name
    assert "pathlib.Path" not in MODULE_PY.read_text()


# ---- CMake ------------------------------------------------------------------------------------

def test_cmake_lists_every_python_file_and_resource():
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    scripts = _cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    resources = _cmake_list(text, "MODULE_PYTHON_RESOURCES")
    on_disk = _module_py_files()
    assert sorted(set(on_disk) - set(scripts)) == [], "add these to MODULE_PYTHON_SCRIPTS"
    assert sorted(set(scripts) - set(on_disk)) == [], "listed in MODULE_PYTHON_SCRIPTS but absent"
    wanted_resources = _module_resources()
    assert sorted(set(wanted_resources) - set(resources)) == [], "add these to MODULE_PYTHON_RESOURCES"
    assert sorted(r for r in resources if not (MODULE_DIR / r).is_file()) == [], "listed resources that are absent"
    assert "slicerMacroBuildScriptedModule(" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_in_slicer_tests_are_registered():
    testing = MODULE_DIR / "Testing" / "Python"
    registered = re.findall(r"slicer_add_python_unittest\(SCRIPT\s+(\S+?)\)", (testing / "CMakeLists.txt").read_text())
    assert sorted(registered) == sorted(p.name for p in testing.glob("*.py"))
    assert "add_subdirectory(Python)" in (MODULE_DIR / "Testing" / "CMakeLists.txt").read_text()


def test_root_cmake_extension_metadata():
    text = (ROOT / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert re.search(rf'set\({key} "[^"]+"\)', text), key
    assert 'set(EXTENSION_DEPENDS "NA")' in text
    assert "add_subdirectory(NACResponse)" in text


def test_icons_are_real_128_pngs():
    from PIL import Image

    for path in (MODULE_DIR / "Resources" / "Icons" / "NACResponse.png", ROOT / "Resources" / "NACResponse.png"):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (128, 128)
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 20, f"{path} looks blank"


# ---- .ui vs code ----------------------------------------------------------------------------------

def _ui_object_names() -> set[str]:
    return {w.get("name") for w in ET.parse(UI_FILE).iter("widget")}


def _ui_parameter_names() -> dict[str, str]:
    out = {}
    for widget in ET.parse(UI_FILE).iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[widget.get("name")] = prop.find("string").text
    return out


def _parameter_fields() -> dict[str, set[str] | None]:
    """Top-level fields of the parameter node; for parameter packs, their field names."""
    tree = _tree(MODULE_PY)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def fields(cls):
        return {n.target.id: n.annotation for n in cls.body if isinstance(n, ast.AnnAssign)}

    out = {}
    for name, annotation in fields(classes["NACResponseParameterNode"]).items():
        pack = annotation.id if isinstance(annotation, ast.Name) and annotation.id in classes else None
        out[name] = set(fields(classes[pack])) if pack else None
    return out


def test_every_ui_name_used_in_code_exists():
    names = _ui_object_names()
    files = [MODULE_PY, *sorted((MODULE_DIR / "NACResponseSlicerLib").glob("*.py"))]
    used = {name for path in files for name in re.findall(r"self\.ui\.(\w+)", path.read_text())}
    assert used, "the widget uses no self.ui names?"
    assert sorted(used - names) == []
    buttons = {w.get("name") for w in ET.parse(UI_FILE).iter("widget") if w.get("class") == "QPushButton"}
    assert sorted(buttons - used) == [], "buttons of the .ui that no handler connects"


def test_slicer_parameter_names_match_parameter_node():
    fields = _parameter_fields()
    bound = _ui_parameter_names()
    assert bound, "no SlicerParameterName in the .ui"
    for widget, name in bound.items():
        head, _, tail = name.partition(".")
        assert head in fields, f"{widget}: SlicerParameterName {name!r} is not a parameter node field"
        if tail:
            assert fields[head] is not None and tail in fields[head], f"{widget}: {name!r} not in the parameter pack"
        else:
            assert fields[head] is None, f"{widget}: {name!r} is a parameter pack; bind its members"


def test_ui_has_the_six_panels_and_segment_editor():
    root = ET.parse(UI_FILE)
    titles = [w.find("property/string").text for w in root.iter("widget") if w.get("class") == "ctkCollapsibleButton"]
    for title in ("Study", "Reader session", "Automatic segmentation", "Features", "Prediction", "Microcalcifications"):
        assert title in titles
    assert any(w.get("class") == "qMRMLSegmentEditorWidget" for w in root.iter("widget"))


# ---- Slicer API contract checker ------------------------------------------------------------------

def test_slicer_api_checker_reports_nothing():
    if not CHECKER.is_file():
        pytest.skip(f"offline Slicer API checker not available ({CHECKER} is absent)")
    result = subprocess.run([sys.executable, str(CHECKER), "NACResponse", "--ui-dir", "NACResponse/Resources/UI",
                             "--quiet-ui"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 findings" in result.stdout


# ---- import boundary -----------------------------------------------------------------------------

def _top_imports(tree: ast.Module, top_level_only: bool) -> list[tuple[int, str]]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def test_core_never_imports_slicer_vtk_qt_ctk():
    offenders = []
    for path in sorted((MODULE_DIR / "NACResponseLib").rglob("*.py")):
        for line, name in _top_imports(_tree(path), top_level_only=False):
            if name in SLICER_MODULES or name == "NACResponseSlicerLib":
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert offenders == []


@pytest.mark.parametrize("name", SLICER_FREE)
def test_slicer_free_helpers_do_not_import_slicer(name):
    path = MODULE_DIR / "NACResponseSlicerLib" / f"{name}.py"
    imports = _top_imports(_tree(path), top_level_only=False)
    assert [n for _, n in imports if n in SLICER_MODULES] == []


def test_slicer_layer_package_init_is_slicer_free():
    init = MODULE_DIR / "NACResponseSlicerLib" / "__init__.py"
    assert [n for _, n in _top_imports(_tree(init), top_level_only=False) if n in SLICER_MODULES] == []


def test_no_heavy_import_at_module_import_time():
    """NACResponse.py and the Slicer-only helpers import the core and heavy libraries inside functions."""
    heavy = {"NACResponseLib", "torch", "monai", "radiomics", "sklearn", "pandas", "pyarrow", "SimpleITK", "dask",
             "matplotlib", "scipy"}
    files = [MODULE_PY] + [p for p in (MODULE_DIR / "NACResponseSlicerLib").glob("*.py")
                           if p.stem not in SLICER_FREE or p.stem == "cli_runner"]
    offenders = [f"{p.name}:{line} {n}" for p in files for line, n in _top_imports(_tree(p), True) if n in heavy]
    assert offenders == []


# ---- requirements.txt vs pyproject.toml -------------------------------------------------------------

def _requirement_lines(path: Path) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()
            if ln.split("#", 1)[0].strip() and not ln.strip().startswith("-")]


def test_requirement_groups_match_pyproject_and_torch_only_in_deep():
    """requirements.txt's [core] is pyproject's dependencies, every other group the extra of that name;
    torch (and anything that pulls it) only in the deep extra."""
    from packaging.requirements import Requirement

    sys.path.insert(0, str(MODULE_DIR))
    from NACResponseSlicerLib.dependencies import read_requirement_groups

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = read_requirement_groups(MODULE_DIR / "Resources" / "requirements.txt")
    normal = lambda items: sorted(str(Requirement(r)) for r in items)  # noqa: E731
    assert normal(groups.pop("core")) == normal(project["dependencies"])
    extras = project["optional-dependencies"]
    for name, requirements in groups.items():
        assert name in extras, f"requirements.txt group [{name}] is not an extra of pyproject.toml"
        assert normal(requirements) == normal(extras[name]), name
    for name, requirements in extras.items():
        names = {Requirement(r).name.lower() for r in requirements}
        if name != "deep":
            assert not names & {"torch", "monai"}, f"extra {name} pulls torch"
    torch = next(Requirement(r) for r in extras["deep"] if Requirement(r).name == "torch")
    assert str(torch.specifier).startswith(">="), "torch is a minimum version, not a pin"
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH ?= torch==" in makefile and torch.specifier.contains(makefile.split("TORCH ?= torch==")[1].split()[0])


def test_ci_runs_python_311_and_312():
    text = (ROOT / ".ci" / "run").read_text()
    assert text.count("make test") == 2 and "3.12" in text and "TORCH=" in text
