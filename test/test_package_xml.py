"""package.xml: a valid format-3 manifest whose every dependency rosdep can resolve on Ubuntu,
and which declares every dependency the code imports."""

from __future__ import annotations

import ast
import functools
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from ros_overlay import REQUIRE_VARIABLE, overlay_source

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_XML = REPO_ROOT / "package.xml"
CODE = ("bisestdc_core", "bisestdc_ros", "training", "launch")
PROJECT_PACKAGES = {"bisestdc_core", "bisestdc_ros"}
# Ubuntu releases of Humble (jammy) and of Jazzy and Kilted (noble).
UBUNTU = ("jammy", "noble")

# Imported module -> the rosdep key that provides it.
IMPORT_KEYS = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "ament_index_python": "ament_index_python",
    "sensor_msgs": "sensor_msgs",
    "std_msgs": "std_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "builtin_interfaces": "builtin_interfaces",
    "vision_msgs": "vision_msgs",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "PIL": "python3-pil",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "torch": "python3-pytorch-pip",
    "onnxruntime": "python3-onnxruntime-pip",
    "rosbags": "python3-rosbags-pip",
}
# Imported modules with no rosdep key, and where they come from instead.
NO_ROSDEP_KEY = {
    "onnx": "no rosdep key exists; installed from requirements/runtime.txt",
    "google": "protobuf's DecodeError for unreadable ONNX files; comes with onnx's pip install "
              "(the apt python3-protobuf would not match onnx's protobuf)",
    "tensorrt": "optional; JetPack or NVIDIA's wheels (TensorRT engine only)",
    "pycuda": "optional; JetPack or pip (TensorRT engine only)",
    "cuda": "optional; cuda-python for the TensorRT engine's cuda_graph option",
    "cityscapesscripts": "optional; test-only cross-check, requirements/test.txt",
}
# Keys used without an import: `ros2 launch`, colcon's setup.py build, the TensorBoard writer
# (torch.utils.tensorboard), the test runner.
KEYS_WITHOUT_IMPORT = {"ros2launch", "python3-setuptools", "python3-tensorboard-pip",
                       "python3-pytest", "python3-hypothesis"}
# REP 149's order of the top-level elements (the format-3 schema's sequence).
ELEMENT_ORDER = ("name", "version", "description", "maintainer", "license", "url", "author",
                 "depend", "group_depend", "member_of_group", "export")
DEPENDENCY_TAGS = ("build_depend", "build_export_depend", "buildtool_depend",
                   "buildtool_export_depend", "exec_depend", "depend", "doc_depend",
                   "test_depend", "conflict", "replace")


# Keys whose rosdep rule pip-installs PyPI's torch (CPU-only on aarch64): never exec_depend, or
# rosdep would replace a Jetson's JetPack torch for a node that runs exported models.
TORCH_KEYS = {"python3-pytorch-pip"}


def declared_keys() -> dict[str, str]:
    root = ET.parse(PACKAGE_XML).getroot()
    return {el.text.strip(): el.tag for el in root if el.tag in DEPENDENCY_TAGS}


def imported_modules() -> set[str]:
    """Top-level modules imported anywhere in the package's code (lazy imports included)."""
    found: set[str] = set()
    for folder in CODE:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - PROJECT_PACKAGES - {"__future__"}


def test_manifest_is_valid_format_3():
    from catkin_pkg.package import parse_package

    warnings: list[str] = []
    package = parse_package(str(PACKAGE_XML), warnings=warnings)  # REP 149 rules
    assert warnings == []
    assert package.package_format == 3 and package.name == "bisestdc_ros"
    assert package.get_build_type() == "ament_python"
    # The schema's element order (catkin_pkg does not check it).
    tags = [el.tag for el in ET.parse(PACKAGE_XML).getroot()]
    ranks = [ELEMENT_ORDER.index("depend" if t in DEPENDENCY_TAGS else t) for t in tags]
    assert ranks == sorted(ranks), tags


def test_every_imported_dependency_is_declared():
    imported = imported_modules()
    unknown = imported - set(IMPORT_KEYS) - set(NO_ROSDEP_KEY)
    assert not unknown, f"imports with no rosdep key mapping: {sorted(unknown)}"
    declared = declared_keys()
    undeclared = {IMPORT_KEYS[m] for m in imported if m in IMPORT_KEYS} - set(declared)
    assert not undeclared, f"imported but not in package.xml: {sorted(undeclared)}"
    unused = set(declared) - set(IMPORT_KEYS.values()) - KEYS_WITHOUT_IMPORT
    assert not unused, f"declared but never used: {sorted(unused)}"


def _rosdistro() -> Path:
    source = overlay_source()
    folder = source / "rosdistro" if source else None
    if folder is None or not folder.is_dir():
        reason = "needs shared/ros-overlay/rosdistro (rosdep's rules and Kilted's package list)"
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{REQUIRE_VARIABLE}=1 but the test {reason}")
        pytest.skip(reason)
    return folder


@functools.cache
def _rosdistro_yaml(name: str):
    """One of rosdistro's files, parsed once per session: they are large, and libyaml's parser
    (the same safe loader, in C) reads them several times faster than the pure-Python one."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((_rosdistro() / name).read_text(), Loader=loader)


def _ubuntu_rule(rules: dict, key: str, codename: str):
    """What rosdep installs for ``key`` on Ubuntu ``codename`` (None: nothing)."""
    entry = rules[key]
    os_rule = entry.get("ubuntu", entry.get("*"))
    if isinstance(os_rule, dict) and not {"pip", "apt", "source", "packages"} & set(os_rule):
        os_rule = os_rule.get(codename, os_rule.get("*"))  # per-release rules
    return os_rule


@pytest.mark.slow
def test_every_dependency_resolves_on_ubuntu():
    rules: dict = {}
    for name in ("base.yaml", "python.yaml"):
        rules.update(_rosdistro_yaml(name))
    distribution = _rosdistro_yaml("kilted-distribution.yaml")
    ros_packages = set()
    for repo_name, repo in distribution["repositories"].items():
        release = repo.get("release")
        if release:
            ros_packages.update(release.get("packages", [repo_name]))
    failures = []
    for key in declared_keys():
        if key in ros_packages:
            continue
        if key not in rules:
            failures.append(f"{key}: neither a Kilted package nor a rosdep key")
            continue
        for codename in UBUNTU:
            if not _ubuntu_rule(rules, key, codename):
                failures.append(f"{key}: no rule for ubuntu {codename}")
        if "pip" in str(_ubuntu_rule(rules, key, "noble")) and not key.endswith("-pip"):
            failures.append(f"{key}: installs with pip but is not a -pip key")
    assert not failures, "\n".join(failures)
    # The Python keys that exist as Ubuntu packages use them, not pip.
    apt_keys = [k for k in declared_keys() if k.startswith("python3-") and not k.endswith("-pip")]
    assert all(isinstance(_ubuntu_rule(rules, k, "noble"), list) for k in apt_keys)


def test_torch_is_no_runtime_dependency():
    """The node with an ONNX or TensorRT engine imports no torch (.importlinter's
    torch-free-runtime): torch is a test dependency, and the README's rosdep command for the
    Jetson skips its key."""
    from test_requirements import runtime_imports

    declared = declared_keys()
    assert "torch" in imported_modules() and IMPORT_KEYS["torch"] in TORCH_KEYS
    for key in TORCH_KEYS & set(declared):
        assert declared[key] == "test_depend", f"{key} is a {declared[key]}"
    # What the runtime imports and rosdep can install is an exec_depend.
    runtime_keys = {IMPORT_KEYS[m] for m in runtime_imports() if m in IMPORT_KEYS}
    assert runtime_keys and not runtime_keys & TORCH_KEYS
    not_exec = {k for k in runtime_keys if declared.get(k) not in ("exec_depend", "depend")}
    assert not not_exec, f"the runtime imports these but they are not exec_depend: {not_exec}"
    readme = (REPO_ROOT / "README.md").read_text()
    skipping = [line for line in readme.splitlines()
                if "rosdep install" in line and "--skip-keys" in line]
    assert any(all(key in line for key in TORCH_KEYS) for line in skipping), (
        "README.md shows no `rosdep install ... --skip-keys` that skips the torch key")


def test_torch_keys_are_the_ones_installing_torch():
    """TORCH_KEYS is checked against rosdep's own rules: every declared key that pip-installs
    torch or torchvision is in it."""
    rules = _rosdistro_yaml("python.yaml")
    installing = set()
    for key in declared_keys():
        rule = _ubuntu_rule(rules, key, "jammy") if key in rules else None
        packages = rule.get("pip", {}) if isinstance(rule, dict) else {}
        packages = packages.get("packages", []) if isinstance(packages, dict) else packages
        if {"torch", "torchvision"} & set(packages):
            installing.add(key)
    assert installing == TORCH_KEYS & set(declared_keys()) and installing, installing
