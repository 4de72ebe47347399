"""Synthetic street scenes with exact Cityscapes labels, for tests, CI, bags and the demo.

A scene is a small 3-D world (flat ground, a straight road, buildings, trees, street furniture,
vehicles, people) seen by a pinhole camera at driver height. Every shape is drawn into the RGB
image and into the train-id map with the *same* polygon, so the label matches the image exactly;
texture, shadows and lighting only touch the image. Distant poles end up one or two pixels
wide and distant signs and lights a few pixels, which is the small-object regime the network is
built for.

Everything is a pure function of the seed: the world layout comes from one random stream and
each frame's noise from another, derived with ``numpy.random.SeedSequence``, so the same seed
gives byte-identical images and labels.

The world is :mod:`.synthetic_world`, its drawing :mod:`.synthetic_render`; this module is
the public API (scenes, sequences, datasets on disk) and the command line.

CLI::

    python -m bisestdc_core.data.synthetic --out DIR --frames 100 --split train \\
        --height 512 --width 1024 --seed 0 [--sequence]
"""

from __future__ import annotations

import argparse
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from bisestdc_core.data.cityscapes_labels import train_ids_to_label_ids
from bisestdc_core.data.synthetic_render import render_world
from bisestdc_core.data.synthetic_world import make_world

logger = logging.getLogger(__name__)

CITY = "synthtown"


def hash_name(text: str) -> int:
    """A stable (process-independent) 32-bit hash; Python's hash() is salted per process."""
    return zlib.crc32(text.encode())


def _streams(seed: int, *keys: int) -> tuple[np.random.Generator, np.random.Generator]:
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *keys])
    world_ss, noise_ss = ss.spawn(2)
    return np.random.default_rng(world_ss), np.random.default_rng(noise_ss)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def render_scene(seed: int, height: int = 512, width: int = 1024,
                 *keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one random street scene.

    Args:
        seed: any integer; the same seed gives byte-identical outputs.
        height, width: output size in pixels.
        keys: further integers mixed into the seed (a dataset's split and frame index).

    Returns:
        image: H x W x 3 uint8 RGB.
        train_ids: H x W uint8 Cityscapes train ids (every pixel labelled).
    """
    world_rng, noise_rng = _streams(seed, *keys)
    world = make_world(world_rng, length=0.0)
    return render_world(world, 0, height, width, noise_rng, speed=0.0)


def render_sequence(seed: int, n: int, height: int = 512, width: int = 1024,
                    speed: float = 0.8) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render ``n`` temporally coherent frames of one street, the camera driving forward.

    The world is fixed by the seed; frame t sees it from ``t * speed`` metres further on, with
    other road users moving on their own. Only the sensor noise changes independently per frame.

    Args:
        seed: world seed.
        n: number of frames.
        height, width: frame size.
        speed: camera advance per frame in metres (0.8 m at 10 Hz is about 29 km/h).

    Yields:
        (image H x W x 3 uint8 RGB, train_ids H x W uint8) per frame.
    """
    world_rng, _ = _streams(seed)
    world = make_world(world_rng, length=max(n, 1) * speed)
    for frame in range(n):
        _, noise_rng = _streams(seed, 1, frame)
        yield render_world(world, frame, height, width, noise_rng, speed)


def cityscapes_paths(out_root: Path, split: str, city: str, seq: int,
                     frame: int) -> tuple[Path, Path]:
    """(image path, labelIds path) of one frame in the official Cityscapes layout."""
    stem = f"{city}_{seq:06d}_{frame:06d}"
    return (out_root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
            out_root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")


def write_sample(image: np.ndarray, train_ids: np.ndarray, image_path: Path,
                 label_path: Path) -> None:
    """Write one frame as Cityscapes files: RGB PNG, labelIds PNG and instanceIds PNG.

    instanceIds (= labelIds, i.e. no instances) is written so that cityscapesscripts'
    evaluation, which opens it by default, runs on the generated folder.
    """
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    label_ids = train_ids_to_label_ids(train_ids)
    ok = cv2.imwrite(str(image_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    ok &= cv2.imwrite(str(label_path), label_ids)
    inst_path = label_path.with_name(label_path.name.replace("_labelIds", "_instanceIds"))
    ok &= cv2.imwrite(str(inst_path), label_ids)
    if not ok:
        raise OSError(f"cannot write {image_path} / {label_path}")


def write_dataset(out_root: str | Path, n_frames: int, split: str = "train", height: int = 512,
                  width: int = 1024, seed: int = 0, sequence: bool = False, city: str = CITY,
                  progress: bool = False) -> list[Path]:
    """Write a synthetic dataset in Cityscapes layout (read it with ``CityscapesDataset``).

    Independent scenes get sequence number i and frame 0; a sequence is sequence 0, frames
    0..n-1. The split name is mixed into the seed so train and val written with the same seed
    differ.

    Args:
        out_root: dataset root (``leftImg8bit/`` and ``gtFine/`` are created in it).
        n_frames: number of frames.
        split: split folder name.
        height, width: frame size.
        seed: base seed.
        sequence: write one temporally coherent drive instead of independent scenes.
        city: city name in the folders and file names.
        progress: show a tqdm bar.

    Returns:
        The written image paths, in order.
    """
    out_root = Path(out_root)
    split_key = hash_name(split)
    if sequence:
        frames = render_sequence(seed * 7919 + split_key, n_frames, height, width)
        items = ((0, t, frame) for t, frame in enumerate(frames))
    else:
        items = ((i, 0, render_scene(seed, height, width, split_key, i))
                 for i in range(n_frames))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=n_frames, desc=f"synthetic {split}", unit="frame")
    paths = []
    for seq, frame, (image, train_ids) in items:
        image_path, label_path = cityscapes_paths(out_root, split, city, seq, frame)
        write_sample(image, train_ids, image_path, label_path)
        paths.append(image_path)
    logger.info("wrote %d frames to %s (split %s)", len(paths), out_root, split)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bisestdc_core.data.synthetic",
        description="Write synthetic street scenes with Cityscapes labels in Cityscapes layout.")
    parser.add_argument("--out", required=True, type=Path, help="dataset root to write")
    parser.add_argument("--frames", type=int, default=100, help="number of frames")
    parser.add_argument("--split", default="train", help="split folder name (train, val, ...)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequence", action="store_true",
                        help="one temporally coherent drive instead of independent scenes")
    parser.add_argument("--city", default=CITY, help="city name used in paths")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    write_dataset(args.out, args.frames, args.split, args.height, args.width, args.seed,
                  sequence=args.sequence, city=args.city, progress=True)


if __name__ == "__main__":
    main()
