"""Where a benchmark's results go: ``<out>/<name>.json`` (numbers) and ``.md`` (the table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(out: str | Path, name: str, report: dict[str, Any], markdown: str) -> None:
    """Write the report as JSON and Markdown under ``out`` and print the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out / name}.json and .md")
