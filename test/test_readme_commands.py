"""Every tool command README.md shows runs as written after the README's set-up: each is run
with --help (from the repository root, with the .venv's tools on PATH; `ros2 run` / `ros2
launch` forms where the ROS tools and the colcon-installed package are present)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from ros_overlay import require_installed_package, require_ros_tools

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
PACKAGE = "bisestdc_ros"
TIMEOUT = 180


def readme_commands() -> list[str]:
    """Commands in README's bash blocks (continuations joined) and in inline code spans."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    commands += re.findall(r"`((?:python|ros2|bisestdc-|segment_node|torchrun)[^`]*)`", text)
    return commands


def tool_of(command: str) -> tuple[str, ...] | None:
    """The invocation to run with --help: ("python -m", module), ("script", path), ("path",
    name), ("ros2 run", executable), ("ros2 launch", file); None for set-up commands."""
    words = shlex.split(command)
    if words[0] == "python" and words[1] == "-m":
        return ("python -m", words[2])
    if words[0] == "python" and words[1].endswith(".py"):
        return ("script", words[1])
    if words[0] == "torchrun":
        if "-m" in words:
            return ("python -m", words[words.index("-m") + 1])
        return ("script", next(w for w in words if w.endswith(".py")))
    if words[0].startswith("bisestdc-") or words[0] == "segment_node":
        return ("path", words[0])
    if words[:3] == ["ros2", "run", PACKAGE]:
        return ("ros2 run", words[3])
    if words[:3] == ["ros2", "launch", PACKAGE]:
        return ("ros2 launch", words[3])
    return None  # make, pip, cd, git, colcon, source, bash: set-up, not tools


TOOLS = sorted({tool for c in readme_commands() if (tool := tool_of(c)) is not None})


def test_readme_shows_both_forms_of_every_tool():
    scripts = re.findall(r'"([\w-]+) = [\w.]+:\w+"', (REPO_ROOT / "setup.py").read_text())
    assert scripts, "no console scripts found in setup.py"
    for script in scripts:
        assert ("ros2 run", script) in TOOLS, f"README never shows `ros2 run {PACKAGE} {script}`"
        assert ("path", script) in TOOLS, f"README never shows `{script}` on the PATH"


@pytest.mark.parametrize("tool", TOOLS, ids=[" ".join(t) for t in TOOLS])
def test_readme_command_runs(tool, ros_env):
    kind, name = tool
    env = dict(ros_env)
    # After `make venv` the package's tools are in the .venv's bin, beside this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if kind == "python -m":
        command = [sys.executable, "-m", name, "--help"]
    elif kind == "script":
        command = [sys.executable, name, "--help"]
    elif kind == "path":
        command = [name, "--help"]
    else:
        require_ros_tools(modules=("launch_ros", "ros2cli"), commands=("ros2",))
        require_installed_package()
        verb = kind.split()[1]
        command = ["ros2", verb, PACKAGE, name,
                   "--show-args" if verb == "launch" else "--help"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    assert "usage:" in result.stdout or "Arguments (pass arguments as" in result.stdout, (
        result.stdout)
