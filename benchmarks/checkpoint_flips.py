"""Every single-byte corruption of a small checkpoint: refused, loaded unchanged, or wrong?

Saves a small project-format checkpoint with torch.save, then for every byte position and each
of a few XOR masks writes the corrupted file and reads it back with the project's reader
(``bisestdc_core.models.checkpoint.read_file``). A corruption must either be refused with a
CheckpointError or load exactly what was saved (a byte nobody reads: padding, a timestamp).
Prints the three counts and the positions of any "wrong" load. ``--reader torch`` runs the
same corruptions through plain ``torch.load(weights_only=True)`` for comparison.

    python -m benchmarks.checkpoint_flips
    python -m benchmarks.checkpoint_flips --reader torch
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from bisestdc_core.models.checkpoint import PROJECT_FORMAT, CheckpointError, read_file

LOG = logging.getLogger("checkpoint_flips")


def identical(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(identical(a[k], b[k])
                                                                    for k in a)
    return a == b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--masks", type=lambda v: int(v, 0), nargs="+",
                        default=[0x01, 0x10, 0x80, 0xFF], help="XOR masks applied to each byte")
    parser.add_argument("--reader", choices=("project", "torch"), default="project",
                        help="read_file, or torch.load(weights_only=True) alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    g = torch.Generator().manual_seed(0)
    saved = {"format": PROJECT_FORMAT, "model": "stdc1", "num_classes": 19,
             "state_dict": {"head.weight": torch.randn(4, 8, generator=g),
                            "bn.num_batches_tracked": torch.tensor(7)}}
    counts = {"refused": 0, "unchanged": 0, "wrong": 0}
    if args.reader == "project":
        read, refusals = read_file, (CheckpointError,)
    else:
        def read(path):
            return torch.load(path, map_location="cpu", weights_only=True)

        refusals = (Exception,)  # anything torch raises counts as a refusal here
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        torch.save(saved, path)
        original = path.read_bytes()
        for position in tqdm(range(len(original)), desc="byte", unit="B"):
            for mask in args.masks:
                data = bytearray(original)
                data[position] ^= mask
                path.write_bytes(bytes(data))
                try:
                    loaded = read(path)
                except refusals:
                    counts["refused"] += 1
                    continue
                if identical(saved, loaded):
                    counts["unchanged"] += 1
                else:
                    counts["wrong"] += 1
                    LOG.debug("byte %d ^ 0x%02x loads different content", position, mask)
    LOG.info("%s reader: %d-byte checkpoint, %d corruptions (each byte XOR %s): refused %d, "
             "loaded unchanged %d, loaded wrong %d", args.reader, len(original),
             len(original) * len(args.masks), ", ".join(f"0x{m:02x}" for m in args.masks),
             counts["refused"], counts["unchanged"], counts["wrong"])
    return 1 if counts["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
