"""Every command's one error boundary (``bisestdc_core.cli.boundary.run_command``).

Each console script, ``python -m`` entry and ``training/*.py`` script is run in process with a
bad input of each kind (a checkpoint with one flipped byte, a card of an unknown class set, a
bad config key, a missing file, a directory where a file is expected, a card the network's
strides cannot take, hostile nesting): exit status 2, one ``error:`` line on stderr naming the
file or key, no traceback; ``--debug`` re-raises the error with its traceback.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from bisestdc_core.cli import benchmark, export
from bisestdc_core.cli import evaluate as evaluate_cli
from bisestdc_core.cli import package_checkpoint as package_checkpoint_cli
from bisestdc_core.cli import quantize as quantize_cli
from bisestdc_core.cli import train as train_cli
from bisestdc_core.data.synthetic import write_dataset
from bisestdc_core.models import CheckpointError, build_model, save_checkpoint
from bisestdc_ros import demo
from bisestdc_ros.bag_eval import offline as bag_eval_offline
from bisestdc_ros.cli import bag_eval, make_bag

# runpy warns that a module run as __main__ is already imported (by this test): harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Small checkpoints (good, one flipped byte, unknown class sets, a size no stride takes),
    a tiny dataset and a corrupt copy of it, a tiny bag: made once for the module."""
    root = tmp_path_factory.mktemp("entry_points")
    torch.manual_seed(0)
    network = build_model("stdc1", 19)
    paths = {name: root / f"{name}.pt" for name in ("good", "mars", "odd", "mars7")}
    save_checkpoint(paths["good"], network, "stdc1", "cityscapes", half=True,
                    network_size=[64, 128])
    save_checkpoint(paths["mars"], network, "stdc1", "mars", half=True, network_size=[64, 128])
    save_checkpoint(paths["odd"], network, "stdc1", "cityscapes", half=True,
                    network_size=[33, 47])
    save_checkpoint(paths["mars7"], build_model("stdc1", 7), "stdc1", "mars", half=True)
    data = bytearray(paths["good"].read_bytes())
    data[len(data) // 2] ^= 0x01  # inside a tensor record
    paths["flipped"] = root / "flipped.pt"
    paths["flipped"].write_bytes(bytes(data))
    paths["val"] = root / "val"
    write_dataset(paths["val"], 2, split="val", height=64, width=128, seed=5)
    paths["bad_val"] = root / "bad_val"
    write_dataset(paths["bad_val"], 2, split="val", height=64, width=128, seed=5)
    image = sorted(paths["bad_val"].rglob("*leftImg8bit.png"))[0]
    image.write_bytes(b"not a png")
    paths["image"] = image
    paths["bag"] = root / "bag"
    assert make_bag.main(["--frames", "2", "--height", "32", "--width", "64", "--out",
                          str(paths["bag"])]) == 0
    paths["bad_key"] = root / "bad_key.yaml"
    paths["bad_key"].write_text("model:\n  nme: stdc1\n")
    paths["deep"] = root / "deep.yaml"
    paths["deep"].write_text("model: " + "[" * 5000 + "]" * 5000 + "\n")
    paths["dir"] = root
    paths["missing"] = root / "missing.pt"
    return paths


def one_error_line(capsys, code: int, *named: str) -> str:
    """Exit status 2 and exactly one ``error:`` line on stderr (naming ``named``), no
    traceback; returns the line."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for text in named:
        assert text in lines[0], lines[0]
    return lines[0]


def run_script(argv: list[str], path: str | None = None, module: str | None = None) -> int:
    """A ``training/*.py`` script or a ``python -m`` module as ``__main__``, in process."""
    saved = sys.argv
    sys.argv = [path or module, *argv]
    try:
        if path is not None:
            runpy.run_path(str(REPO_ROOT / path), run_name="__main__")
        else:
            runpy.run_module(module, run_name="__main__", alter_sys=False)
    except SystemExit as done:
        return int(done.code or 0)
    finally:
        sys.argv = saved
    raise AssertionError(f"{path or module} did not exit")


# ---- bisestdc-export ------------------------------------------------------------------------

EXPORT_CASES = {
    "corrupt checkpoint": (["--weights", "{flipped}"], ["{flipped}", "corrupt checkpoint"]),
    "missing file": (["--weights", "{missing}"], ["--weights", "no such file", "{missing}"]),
    "directory": (["--weights", "{dir}"], ["--weights", "a directory"]),
    "card size no stride takes": (["--weights", "{odd}"], ["{odd}", "network_size"]),
    "size option no stride takes": (["--weights", "{good}", "--network-size", "33", "47"],
                                    ["--network-size", "multiples of 32"]),
    "class set of another count": (["--weights", "{good}", "--class-set", "camvid"],
                                   ["{good}", "'camvid' has 11 classes"]),
}


def expand(values: list[str], files: dict[str, Path]) -> list[str]:
    return [v.format(**{k: str(p) for k, p in files.items()}) for v in values]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_export(case, files, tmp_path, capsys):
    argv, named = EXPORT_CASES[case]
    code = export.main([*expand(argv, files), "--out", str(tmp_path / "m.onnx")])
    one_error_line(capsys, code, *expand(named, files))
    assert not (tmp_path / "m.onnx").exists()


def test_export_check_tensorrt_of_a_missing_file(files, capsys):
    code = export.main(["--check-tensorrt", str(files["missing"])])
    one_error_line(capsys, code, "--check-tensorrt", "ONNX file not found")


def test_export_debug_reraises_with_the_traceback(files, tmp_path):
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        export.main(["--weights", str(files["flipped"]), "--out", str(tmp_path / "m.onnx"),
                     "--debug"])


# ---- bisestdc-benchmark, bisestdc-quantize --------------------------------------------------

@pytest.mark.parametrize("weights,named", [
    ("flipped", "corrupt checkpoint"), ("missing", "no such file"), ("dir", "a directory")])
def test_benchmark(weights, named, files, tmp_path, capsys):
    code = benchmark.main(["--weights", str(files[weights]), "--models", "stdc1", "--engines",
                           "torch", "--sizes", "64x128", "--warmup", "0", "--runs", "1",
                           "--out", str(tmp_path / "b")])
    one_error_line(capsys, code, str(files[weights]), named)


@pytest.mark.parametrize("onnx,named", [
    ("missing", "no such file"), ("dir", "a directory"), ("good", "no sidecar")])
def test_quantize(onnx, named, files, tmp_path, capsys):
    code = quantize_cli.main(["--onnx", str(files[onnx]), "--out", str(tmp_path / "q.onnx")])
    one_error_line(capsys, code, str(files[onnx]), named)


# ---- bisestdc-train, training/train.py ------------------------------------------------------

@pytest.mark.parametrize("config,named", [
    ("bad_key", "unknown key 'model.nme'"), ("missing", "not found"),
    ("dir", "a folder, not a regular file"), ("deep", "levels deep, more than the 32 allowed")])
def test_train(config, named, files, capsys):
    code = train_cli.main(["--config", str(files[config])])
    one_error_line(capsys, code, str(files[config]), named)


def test_train_script_and_module(files, capsys):
    code = run_script(["--config", str(files["bad_key"])], path="training/train.py")
    one_error_line(capsys, code, "unknown key 'model.nme'")
    code = run_script(["--config", str(files["bad_key"])], module="bisestdc_core.cli.train")
    one_error_line(capsys, code, "unknown key 'model.nme'")


# ---- bisestdc-evaluate, training/evaluate.py ------------------------------------------------

EVALUATE_CASES = {
    "corrupt checkpoint": ("flipped", "val", ["{flipped}", "corrupt checkpoint"]),
    "unknown class set of no known count": ("mars7", "val", ["{mars7}", "'mars'", "7 classes"]),
    "missing file": ("missing", "val", ["--weights", "no such file"]),
    "directory": ("dir", "val", ["--weights", "a directory"]),
    "corrupt dataset file": ("good", "bad_val", ["{image}"]),
    "dataset root is a file": ("good", "good", ["--root"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_evaluate(case, files, tmp_path, capsys):
    weights, root, named = EVALUATE_CASES[case]
    code = evaluate_cli.main(["--weights", str(files[weights]), "--dataset", "synthetic",
                              "--root", str(files[root]), "--out", str(tmp_path / "o"),
                              "--device", "cpu", "--no-progress"])
    one_error_line(capsys, code, *expand(named, files))


@pytest.mark.slow
def test_evaluate_script_and_module(files, tmp_path, capsys):
    argv = ["--weights", str(files["good"]), "--dataset", "synthetic", "--root",
            str(files["bad_val"]), "--out", str(tmp_path / "o"), "--device", "cpu",
            "--no-progress"]
    one_error_line(capsys, run_script(argv, path="training/evaluate.py"), str(files["image"]))
    one_error_line(capsys, run_script(argv, module="bisestdc_core.cli.evaluate"),
                   str(files["image"]))
    with pytest.raises(Exception, match="cannot be used"):
        evaluate_cli.main([*argv, "--debug"])


# ---- bisestdc-package-checkpoint, training/package_checkpoint.py ----------------------------

@pytest.mark.parametrize("source,target,extra,named", [
    ("flipped", "out.pt", [], ["{flipped}", "corrupt checkpoint"]),
    ("missing", "out.pt", [], ["source", "no such file"]),
    ("dir", "out.pt", [], ["source", "a directory"]),
    ("good", "", [], ["target", "a directory"]),
    ("good", "out.pt", ["--network-size", "33", "47"], ["--network-size", "multiples of 32"]),
])
def test_package_checkpoint(source, target, extra, named, files, tmp_path, capsys):
    code = package_checkpoint_cli.main([str(files[source]), str(tmp_path / target), *extra])
    one_error_line(capsys, code, *expand(named, files))
    assert not (tmp_path / "out.pt").exists()


def test_package_checkpoint_script_and_module(files, tmp_path, capsys):
    argv = [str(files["flipped"]), str(tmp_path / "out.pt")]
    one_error_line(capsys, run_script(argv, path="training/package_checkpoint.py"),
                   "corrupt checkpoint")
    one_error_line(capsys, run_script(argv, module="bisestdc_core.cli.package_checkpoint"),
                   "corrupt checkpoint")


# ---- bisestdc-bag-eval, python -m bisestdc_ros.bag_eval -------------------------------------

BAG_EVAL_CASES = {
    "corrupt checkpoint": (["--weights", "{flipped}", "--network-size", "64", "128"],
                           ["{flipped}", "corrupt checkpoint"]),
    "missing file": (["--weights", "{missing}"], ["--weights", "{missing}"]),
    "directory": (["--weights", "{dir}"], ["--weights", "directory"]),
    "card size no stride takes": (["--weights", "{odd}"], ["{odd}", "network_size"]),
    "size option no stride takes": (["--weights", "{good}", "--network-size", "33", "47"],
                                    ["--network-size", "multiples of 32"]),
    "missing bag": (["--weights", "{good}", "--bag", "{missing}"], ["{missing}"]),
}


@pytest.mark.parametrize("case", list(BAG_EVAL_CASES))
def test_bag_eval(case, files, tmp_path, capsys, monkeypatch):
    def refuse(*_args):
        raise AssertionError("inference started on an input that should have been refused")

    monkeypatch.setattr(bag_eval_offline, "build_segmenter", refuse)
    argv, named = BAG_EVAL_CASES[case]
    code = bag_eval.main(["--bag", str(files["bag"]), *expand(argv, files), "--out",
                          str(tmp_path / "report")])
    one_error_line(capsys, code, *expand(named, files))


def test_bag_eval_module(files, tmp_path, capsys):
    argv = ["--bag", str(files["bag"]), "--weights", str(files["missing"]), "--out",
            str(tmp_path / "report")]
    one_error_line(capsys, run_script(argv, module="bisestdc_ros.bag_eval"), "--weights")


# ---- bisestdc-make-bag, the demo ------------------------------------------------------------

@pytest.mark.parametrize("extra,named", [
    (["--source", "folder", "--root", "{missing}"], ["--root", "{missing}"]),
    (["--source", "cityscapes", "--root", "{good}"], ["--root"]),
    (["--source", "cityscapes", "--root", "{bad_val}"], ["{image}"]),
    (["--frames", "0"], ["--frames"]),
    (["--storage", "mcap", "--compression", "message", "--frames", "1"], ["per-message"]),
])
def test_make_bag(extra, named, files, tmp_path, capsys):
    code = make_bag.main([*expand(extra, files), "--height", "32", "--width", "64", "--out",
                          str(tmp_path / "bag")])
    one_error_line(capsys, code, *expand(named, files))


@pytest.mark.parametrize("weights,named", [("missing", "no such file"), ("dir", "a directory")])
def test_demo(weights, named, files, tmp_path, capsys):
    code = demo.main(["--weights", str(files[weights]), "--out", str(tmp_path / "demo")])
    one_error_line(capsys, code, "--weights", named)
    assert not (tmp_path / "demo").exists()


# ---- the boundary itself --------------------------------------------------------------------

def test_the_boundary_reports_user_errors_and_keeps_bugs(tmp_path, capsys):
    """User-named paths, the caller's error types and hostile nesting are one line; an OSError
    on a path the user never named, or another error type, keeps its traceback."""
    import argparse

    from bisestdc_core.cli.boundary import run_command

    class BagTrouble(RuntimeError):
        pass

    args = argparse.Namespace(out=tmp_path / "out", debug=False)

    def open_under_out(a):
        return len((a.out / "report.json").read_text())

    def open_elsewhere(_a):
        return len(Path("/nonexistent-package-data/file.txt").read_text())

    def bag_trouble(_a):
        raise BagTrouble("bag b: no topic /x")

    def deep(_a):
        def down(n):
            return down(n + 1)
        return down(0)

    one_error_line(capsys, run_command(open_under_out, args), "report.json")
    one_error_line(capsys, run_command(bag_trouble, args, errors=(BagTrouble,)), "bag b")
    one_error_line(capsys, run_command(deep, args), "nested too deeply")
    with pytest.raises(FileNotFoundError):
        run_command(open_elsewhere, args)
    with pytest.raises(BagTrouble):
        run_command(bag_trouble, args)
    args.debug = True
    with pytest.raises(FileNotFoundError):
        run_command(open_under_out, args)
