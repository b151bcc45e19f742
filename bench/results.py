"""A study's resumable results file (`OUTPUT/results.json`) and its report.

`load(out)` → (the results dict, empty for a new study; `save()` writing it back), so that a
re-run with the same output skips what is recorded; `report(out, stem, text, draw)` writes
the Markdown `OUTPUT/STEM.md` and the plot `draw(OUTPUT/STEM.png)` and prints the text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

NAME = "results.json"


def load(out: Path) -> tuple[dict, Callable[[], None]]:
    path = out / NAME
    results = json.loads(path.read_text()) if path.is_file() else {}

    def save() -> None:
        path.write_text(json.dumps(results, indent=2) + "\n")

    return results, save


def report(out: Path, stem: str, text: str, draw: Callable[[Path], object]) -> None:
    (out / f"{stem}.md").write_text(text + "\n")
    draw(out / f"{stem}.png")
    print(text)
    print(f"results: {out / NAME}; plot: {out / f'{stem}.png'}")
