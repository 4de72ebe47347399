"""The requirement files by use: requirements/runtime.txt (the node and the tools that run
exported models) holds no torch, so installing it never replaces a CUDA torch (JetPack's on a
Jetson); training.txt adds torch on top of it; test.txt adds the ROS 2 PyPI wheels and the test
tools. Every third-party import of the torch-free runtime modules (.importlinter's
`torch-free-runtime` contract, lazy imports and the project modules they reach included) is
provided by the runtime set, by the ROS install (or ros-pypi.txt without one), or is listed
below as coming from elsewhere."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata as metadata
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO_ROOT / "requirements"
RUNTIME, TRAINING, ROS_PYPI, TEST = (REQUIREMENTS / f"{name}.txt"
                                     for name in ("runtime", "training", "ros-pypi", "test"))
PROJECT_PACKAGES = ("bisestdc_core", "bisestdc_ros")
CONTRACT = "importlinter:contract:torch-free-runtime"
TORCH = {"torch", "torchvision"}
# Imports of the runtime that no pip set provides, and where they come from instead.
NOT_FROM_PIP = {
    "tensorrt": "JetPack's python3-libnvinfer or NVIDIA's wheels; TensorRT engine only",
    "pycuda": "built on the device against /usr/local/cuda (README); TensorRT engine only",
    "cuda": "cuda-python, only for the TensorRT engine's cuda_graph option",
    "vision_msgs": "a ROS package without a PyPI wheel (rosdep); the node skips the "
                   "small_objects output without it",
    "cityscapesscripts": "optional: a verbatim copy of its label table is used without it",
}


def requirement_lines(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, str]]:
    """The requirement lines of ``path`` and of the files it includes with ``-r``, as (file,
    line) pairs; comments and blank lines dropped."""
    assert path not in seen, f"-r cycle: {' -> '.join(p.name for p in (*seen, path))}"
    assert path.is_file(), f"missing requirement file {path}"
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        include = re.fullmatch(r"(?:-r|--requirement)\s*(\S+)", line)
        if include:
            lines += requirement_lines((path.parent / include.group(1)).resolve(), (*seen, path))
        else:
            assert not line.startswith("-"), f"{path.name}: unexpected option {line!r}"
            lines.append((path, line))
    return lines


def requirements(path: Path) -> list[Requirement]:
    return [Requirement(line) for _, line in requirement_lines(path)]


def includes(path: Path) -> set[str]:
    """File names ``path`` includes directly with ``-r``."""
    return set(re.findall(r"^(?:-r|--requirement)\s*(\S+)", path.read_text(), re.M))


def installed_closure(reqs: list[Requirement]) -> set[str]:
    """Canonical names of the distributions the requirements that apply to this interpreter
    install, their dependencies followed through the installed metadata (extras included)."""
    found: set[str] = set()
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [(r, "") for r in reqs]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in done:
            continue
        done.add((name, frozenset(req.extras)))
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is required but not installed here: run `make venv`")
        found.add(name)
        for line in dist.requires or []:
            dep = Requirement(line)
            for wanted in ("", *req.extras):
                todo.append((dep, wanted))
    return found


def runtime_modules() -> list[str]:
    config = configparser.ConfigParser()
    assert config.read(REPO_ROOT / ".importlinter"), ".importlinter not found"
    assert CONTRACT in config, f".importlinter has no [{CONTRACT}]"
    modules = config[CONTRACT]["source_modules"].split()
    assert modules and config[CONTRACT]["forbidden_modules"].split() == ["torch"]
    return modules


def _module_file(module: str) -> Path | None:
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path, module: str) -> set[str]:
    """Every absolute name an import statement in ``path`` names, at any depth (lazy imports
    included); relative imports resolved against ``module``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # submodules
    return names


def runtime_imports() -> dict[str, set[str]]:
    """Third-party top-level imports reached from the runtime modules -> the modules importing
    them. The project modules reached are followed too (with their parent packages, which
    Python runs first), as import-linter follows them for the contract."""
    found: dict[str, set[str]] = {}
    seen: set[str] = set()
    todo = runtime_modules()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        assert path is not None, f"{module} (from .importlinter) has no file"
        for name in _imported_names(path, module):
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                parts = name.split(".")
                todo += [m for i in range(1, len(parts) + 1)
                         if _module_file(m := ".".join(parts[:i])) is not None]
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(module)
    return found


def package_xml_exec_keys() -> set[str]:
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    return {el.text.strip() for el in root if el.tag in ("exec_depend", "depend")}


def test_every_requirement_file_is_in_the_venv_hash():
    """make venv rebuilds .venv when a requirement file changes: it must hash all of them."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(r"^REQ_FILES := (.*)$", makefile, re.M)
    assert match, "Makefile has no REQ_FILES"
    listed = match.group(1).strip()
    if listed != "$(sort $(wildcard requirements/*.txt))":
        names = {Path(word).name for word in listed.split()}
        missing = {p.name for p in REQUIREMENTS.glob("*.txt")} - names
        assert not missing, f"REQ_FILES misses {sorted(missing)}"
    assert re.search(r"pip install -q -r requirements/test\.txt", makefile)


def test_runtime_set_has_no_torch():
    """Neither named in runtime.txt (with its includes, whatever the markers) nor pulled in by
    what it names: installing it keeps a CUDA torch in place."""
    named = {canonicalize_name(r.name) for r in requirements(RUNTIME)}
    assert not named & TORCH, f"runtime set names {sorted(named & TORCH)}"
    pulled = installed_closure(requirements(RUNTIME))
    assert not pulled & TORCH, f"runtime set pulls in {sorted(pulled & TORCH)}"
    assert ROS_PYPI.name not in includes(RUNTIME), (
        "the ROS 2 PyPI wheels stay out of the runtime set: with ROS installed rclpy is ROS's")


def test_sets_build_on_each_other():
    assert includes(TRAINING) >= {RUNTIME.name}, "training.txt must include runtime.txt"
    assert includes(TEST) >= {TRAINING.name, ROS_PYPI.name}
    training = {canonicalize_name(r.name) for r in requirements(TRAINING)}
    assert "torch" in training, "the training set is where torch comes from"
    ros = {canonicalize_name(r.name) for r in requirements(ROS_PYPI)}
    assert ros and all(name.startswith("ros-kilted-") for name in ros), sorted(ros)


def test_pins_are_single_and_python_versions_covered():
    """A distribution named twice in one set only with markers that split the Python versions
    (e.g. the last onnxruntime with Python 3.10 wheels), so pip never sees two pins at once."""
    for path in (RUNTIME, TRAINING, ROS_PYPI, TEST):
        by_name: dict[str, list[Requirement]] = {}
        for req in requirements(path):
            by_name.setdefault(canonicalize_name(req.name), []).append(req)
        for name, reqs in by_name.items():
            for version in ("3.10", "3.11", "3.12"):
                applying = [r for r in reqs if r.marker is None
                            or r.marker.evaluate({"python_version": version, "extra": ""})]
                assert len(applying) == 1, f"{path.name}: {name} on Python {version}: {applying}"


def test_runtime_imports_are_provided():
    imports = runtime_imports()
    assert {"numpy", "onnxruntime", "rclpy"} <= set(imports), sorted(imports)
    assert "torch" not in imports, f"torch reached from {sorted(imports.get('torch', ()))}"
    distributions = {name: {canonicalize_name(d) for d in dists}
                     for name, dists in metadata.packages_distributions().items()}
    runtime = installed_closure(requirements(RUNTIME))
    ros = installed_closure(requirements(ROS_PYPI))
    exec_keys = package_xml_exec_keys()
    failures = []
    for name, importers in sorted(imports.items()):
        if name in NOT_FROM_PIP:
            continue
        dists = distributions.get(name)
        if not dists:
            failures.append(f"{name} ({sorted(importers)[0]}): no installed distribution "
                            "provides it; add it to runtime.txt or to NOT_FROM_PIP with why")
        elif dists & runtime:
            continue
        elif dists & ros and name in exec_keys:
            continue  # ROS's own package: rosdep (exec_depend) or ros-pypi.txt
        else:
            failures.append(f"{name} ({sorted(importers)[0]}): provided by {sorted(dists)}, "
                            "which the runtime set does not install")
    assert not failures, "\n".join(failures)


def test_not_from_pip_entries_are_still_imported():
    """Keeps the exceptions above from outliving the imports they excuse."""
    imported: set[str] = set()
    for package in PROJECT_PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            imported |= {n.split(".")[0] for n in _imported_names(path, package)}
    assert set(NOT_FROM_PIP) <= imported, sorted(set(NOT_FROM_PIP) - imported)
