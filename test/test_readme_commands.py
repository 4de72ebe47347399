"""Every tool command the READMEs show runs as written after the README's set-up: the parser
behind each is asked for --help in process (from the repository root; the console scripts
found on the .venv's PATH and, for the `ros2 run` / `ros2 launch` forms, in the
colcon-installed package where the ROS tools are present), and one console script per package
is started for real as a subprocess.

The READMEs: README.md (for users), training/README.md (training and evaluation guides) and
benchmarks/README.md (results, reliability, verification). README.md keeps exactly two set-up
commands for a fresh machine (`make demo`, `make test`; .ci/run runs the test one), shows how to
run the node on one's own camera in its first screen, and every relative link in the READMEs
resolves."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from ros_overlay import require_installed_package, require_ros_tools

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
# Every README whose commands are run; README.md first.
DOCS = (README, REPO_ROOT / "training" / "README.md", REPO_ROOT / "benchmarks" / "README.md")
PACKAGE = "bisestdc_ros"
TIMEOUT = 180


def readme_commands(docs: tuple[Path, ...] = DOCS) -> list[str]:
    """Commands in the READMEs' bash blocks (continuations joined) and in inline code spans."""
    text = "\n".join(doc.read_text() for doc in docs)
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
    # Only the console scripts: other entry-point groups (plugins) are no commands.
    block = re.search(r'"console_scripts": \[(.*?)\]', (REPO_ROOT / "setup.py").read_text(), re.S)
    assert block, "no console_scripts in setup.py"
    scripts = re.findall(r'"([\w-]+) = [\w.]+:\w+"', block.group(1))
    assert scripts, "no console scripts found in setup.py"
    tools = {tool for c in readme_commands((README,)) if (tool := tool_of(c)) is not None}
    for script in scripts:
        assert ("ros2 run", script) in tools, f"README never shows `ros2 run {PACKAGE} {script}`"
        assert ("path", script) in tools, f"README never shows `{script}` on the PATH"


def _section(text: str, heading: str) -> str:
    """The text under a markdown heading, up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", text, re.S | re.M)
    assert match, f"README.md has no section {heading!r}"
    return match.group(1)


def test_fresh_machine_has_exactly_two_setup_commands():
    """`make demo` runs the demo and `make test` the tests, both installing into .venv; CI
    (.ci/run) runs the test command README.md gives."""
    section = _section(README.read_text(), "Two commands for a fresh machine")
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the fresh-machine section should hold one bash block"
    commands = [line.split("#")[0].strip() for line in blocks[0].splitlines()
                if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"], commands
    assert ".venv" in section
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^test: venv\b", makefile, re.M), "make test must build .venv itself"
    assert re.search(r"^demo: venv\b", makefile, re.M), "make demo must build .venv itself"
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, re.M), ".ci/run no longer runs `make test`"


def test_first_screen_runs_the_node_on_ones_own_camera():
    lines = README.read_text().splitlines()
    assert len(lines) < 400, f"README.md has {len(lines)} lines; keep it under 400 for users"
    first_screen = "\n".join(lines[:40])
    launch = f"ros2 launch {PACKAGE} segment.launch.py image_topics:="
    assert any(launch in line and "weights:=" in line for line in lines[:40]), first_screen
    assert any(launch in line and "onnx:=" in line for line in lines[:40]), first_screen


def _launch_module():
    spec = importlib.util.spec_from_file_location(
        "segment_launch_for_readme", REPO_ROOT / "launch" / "segment.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_arguments_in_the_readmes_exist():
    """Every `name:=value` given to `ros2 launch ... segment.launch.py` is a declared argument."""
    declared = set(_launch_module().LAUNCH_ARGUMENTS)
    used = set()
    for command in readme_commands():
        words = shlex.split(command)
        if words[:3] == ["ros2", "launch", PACKAGE]:
            used |= {w.split(":=")[0] for w in words[4:] if ":=" in w}
    assert used, "no launch arguments found in the READMEs"
    assert used <= declared, f"not launch arguments: {sorted(used - declared)}"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO_ROOT)) for d in DOCS])
def test_relative_links_resolve(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links or doc != README, "README.md links to nothing"
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        assert target.exists(), f"{doc.name}: link to missing {link}"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", re.sub(r"```.*?```", "", target.read_text(),
                                                       flags=re.S), re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{doc.name}: no anchor {link}"


def _console_scripts() -> dict[str, str]:
    """Console script name -> "module:function", as setup.py declares them."""
    block = re.search(r'"console_scripts": \[(.*?)\]', (REPO_ROOT / "setup.py").read_text(), re.S)
    assert block, "no console_scripts in setup.py"
    return dict(re.findall(r'"([\w-]+) = ([\w.]+:\w+)"', block.group(1)))


def _help_in_process(argv0: str, run) -> tuple[int, str]:
    """(exit code, stdout) of ``run()`` with sys.argv = [argv0, "--help"], in this process.

    Each subprocess `--help` cost 3-4 s of interpreter start and torch import for 48 commands;
    importing the tool behind the command here checks the same parser in milliseconds once
    the libraries are loaded. The signal handlers a tool installs first thing (segment_node's
    clean-shutdown handlers) are put back, so that they do not outlive the call in pytest.
    """
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    argv, out = sys.argv, io.StringIO()
    sys.argv = [argv0, "--help"]
    code = 0
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            # runpy warns when the module was already imported (by an earlier test): harmless.
            warnings.filterwarnings("ignore", ".*found in sys.modules", RuntimeWarning)
            result = run()
        code = result if isinstance(result, int) else 0
    except SystemExit as exit_:  # argparse's --help exits 0
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = argv
        for number, handler in handlers.items():
            signal.signal(number, handler)
    return code, out.getvalue()


def _entry_point(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


@pytest.mark.parametrize("tool", TOOLS, ids=[" ".join(t) for t in TOOLS])
def test_readme_command_runs(tool, monkeypatch):
    """The parser behind each README command prints its help, checked in process: `python -m`
    modules and scripts run as __main__, console scripts (on the PATH or through `ros2 run`)
    through their setup.py entry point after the installed executable is found; the launch
    file's arguments through ros2launch's own `--show-args` code. That the installed entry
    points really start is checked once per package by the two subprocess tests below."""
    kind, name = tool
    monkeypatch.chdir(REPO_ROOT)  # the README's commands run from the repository root
    if kind == "python -m":
        code, out = _help_in_process(name, lambda: runpy.run_module(name, run_name="__main__"))
    elif kind == "script":
        code, out = _help_in_process(name, lambda: runpy.run_path(name, run_name="__main__"))
    elif kind == "path":
        # After `make venv` the package's tools are in the .venv's bin, beside this interpreter.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        assert shutil.which(name, path=path), f"{name} is not on the PATH"
        code, out = _help_in_process(name, _entry_point(_console_scripts()[name]))
    else:
        require_ros_tools(modules=("launch_ros", "ros2cli", "ros2launch"), commands=("ros2",))
        require_installed_package()
        from ament_index_python.packages import get_package_prefix

        if kind == "ros2 run":  # what `ros2 run` executes: <prefix>/lib/<package>/<name>
            executable = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / name
            assert executable.is_file() and os.access(executable, os.X_OK), executable
            code, out = _help_in_process(name, _entry_point(_console_scripts()[name]))
        else:
            from ros2launch.api import (
                get_share_file_path_from_package,
                print_arguments_of_launch_file,
            )

            launch_file = get_share_file_path_from_package(package_name=PACKAGE, file_name=name)
            code, out = _help_in_process(name, lambda: print_arguments_of_launch_file(
                launch_file_path=launch_file))
    assert code == 0, f"{kind} {name} --help exited {code}:\n{out}"
    assert "usage:" in out or "Arguments (pass arguments as" in out, out


def _run_installed(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    assert "usage:" in result.stdout, result.stdout
    return result.stdout


@pytest.mark.slow  # a subprocess with torch to import: not for `make test-fast`
def test_core_console_script_starts_from_the_path(ros_env):
    """One real start of a bisestdc_core console script as installed into the .venv: the
    generated wrapper, its interpreter and the import of the entry point."""
    env = dict(ros_env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    script = "bisestdc-train"
    assert _console_scripts()[script].startswith("bisestdc_core.")
    _run_installed([script, "--help"], env)


@pytest.mark.slow  # a subprocess with torch to import: not for `make test-fast`
def test_ros_console_script_starts_through_ros2_run(ros_env):
    """One real `ros2 run` of a bisestdc_ros console script from the ament prefix (what colcon
    installed), with the ROS tools' own environment."""
    require_ros_tools(modules=("launch_ros", "ros2cli"), commands=("ros2",))
    require_installed_package()
    assert _console_scripts()["segment_node"].startswith("bisestdc_ros.")
    out = _run_installed(["ros2", "run", PACKAGE, "segment_node", "--help"], dict(ros_env))
    assert "segment_node" in out
