"""What setup.py installs: bisestdc_core and bisestdc_ros only (no top-level ``training``
package), the training configs as data that still resolve their bases once installed, and the
thin training scripts running from any folder (#14)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bisestdc_core.training.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARE = "share/bisestdc_ros"
SCRIPTS = ("train", "evaluate", "package_checkpoint")


@pytest.fixture(scope="module")
def distribution() -> dict:
    """setup.py's packages and data files, read by setuptools itself (nothing is built)."""
    code = ("import json, setuptools; from distutils.core import run_setup; "
            "d = run_setup('setup.py', stop_after='init'); "
            "print(json.dumps({'packages': d.packages, 'data_files': d.data_files}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_only_the_project_packages_are_installed(distribution):
    tops = {name.split(".")[0] for name in distribution["packages"]}
    assert tops == {"bisestdc_core", "bisestdc_ros"}
    assert "bisestdc_core.training" in distribution["packages"]


def test_installed_configs_resolve_as_in_the_checkout(distribution, tmp_path):
    """Every config of training/configs is installed, bases beside it, with the same values."""
    installed = []
    for target, files in distribution["data_files"]:
        for name in files:
            destination = tmp_path / target / Path(name).name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO_ROOT / name, destination)
            installed.append(destination)
    shipped = sorted((REPO_ROOT / "training/configs").rglob("*.yaml"))
    configs = tmp_path / SHARE / "training/configs"
    assert sorted(p.relative_to(configs) for p in installed if configs in p.parents) == \
        sorted(p.relative_to(REPO_ROOT / "training/configs") for p in shipped)
    for path in sorted((REPO_ROOT / "training/configs").glob("*.yaml")):
        assert load_config(configs / path.name) == load_config(path), path.name


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_training_scripts_run_from_any_folder(script, tmp_path):
    """With the package importable (installed; here: on PYTHONPATH), from any folder."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "training" / f"{script}.py"),
                           "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python training/{script}.py")

