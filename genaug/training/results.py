"""The results table of a protocol run or a sweep: ``results.json`` and ``results.md`` side by side."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

COLUMNS = (("run", "run"), ("gamma", "γ"), ("tg", "T^G"), ("arch", "backbone"), ("epochs", "epochs"),
           ("steps", "steps"), ("loss_first", "loss (first)"), ("loss_last", "loss (last)"),
           ("linear_top1", "linear top-1 %"), ("knn_top1", "k-NN top-1 %"), ("n_train", "train imgs"),
           ("n_val", "val imgs"))
PERCENT = {"linear_top1", "knn_top1"}


def _cell(key: str, value) -> str:
    if value is None:
        return "—"
    if key in PERCENT:
        return f"{100 * value:.2f}"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown(rows: Sequence[dict], title: str) -> str:
    lines = [f"# {title}", "", "| " + " | ".join(name for _, name in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row.get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_table(out: str | Path, rows: Sequence[dict], title: str, meta: dict | None = None) -> tuple[Path, Path]:
    """Write results.json ({"title", "rows", "meta"}) and results.md into `out`; returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    rows = [{k: v for k, v in row.items() if k != "losses"} for row in rows]  # curves are in train_log.json
    payload = {"title": title, "rows": rows, "meta": meta or {}}
    for path, text in ((json_path, json.dumps(payload, indent=1) + "\n"), (md_path, markdown(rows, title))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return json_path, md_path
