"""Rewrite test/data/training_configs_resolved.json from the shipped configs.

The snapshot pins every shipped config's resolved values, so that moving values between a
config and its bases cannot change one unnoticed. Run this only when a change to the values is
intended (a new config, a new field with its default), and review the diff it makes:

    .venv/bin/python test/data/regenerate_config_snapshot.py && git diff test/data
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO_ROOT / "test/data/training_configs_resolved.json"


def main() -> int:
    sys.path.insert(0, str(REPO_ROOT))
    from bisestdc_core.training.config import load_config

    configs = sorted((REPO_ROOT / "training/configs").glob("*.yaml"))
    resolved = {path.name: load_config(path).to_dict() for path in configs}
    SNAPSHOT.write_text(json.dumps(resolved, indent=1, sort_keys=True) + "\n")
    print(f"{SNAPSHOT.relative_to(REPO_ROOT)}: {len(resolved)} configs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
