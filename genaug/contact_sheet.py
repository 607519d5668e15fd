"""Contact sheets of real|aug pairs: the one renderer (``write_sheet``) behind `genaug inspect --grid
out.png` (or .jpg / .webp; ``write_contact_sheet`` reads the pairs from shards) and the report's
``contact_<n>_<label>.png`` (titled, captions with the SSIM).

Each cell shows the model's view of the real image (decoded, EXIF-transposed, cropped to the json
``crop_box`` and resized to the aug image's size) beside the aug image, with the key below (wrapped,
never cut); `genaug inspect --grid` labels the columns "real" and "aug".
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import tarfile
from pathlib import Path
from typing import Iterator, Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from genaug.format import AUG_MEMBERS, JSON, REAL, iter_tar_samples

log = logging.getLogger(__name__)

PAD = 4  # pixels between cells and around the sheet
CAPTION_H = 12  # pixels of one line of caption text under a pair
LABEL_H = 12  # pixels of the "real" / "aug" column labels above the first row
TITLE_H = 12  # pixels of one line of the optional title above the sheet
TEXT = (230, 230, 230)
BACKGROUND = (32, 32, 32)
SHEET_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}  # extension -> PIL format
_PAIR_ERRORS = (OSError, SyntaxError, EOFError, ValueError, KeyError, TypeError, UnidentifiedImageError)


def sheet_size(n_pairs: int, tile: int, columns: int, captions: bool, caption_lines: int = 1,
               labels: bool = False, title_lines: int = 0) -> tuple[int, int]:
    """(width, height) of a sheet of `n_pairs` pairs of tile x tile images, `columns` pairs a row, with
    `caption_lines` lines of caption under each pair, with `labels` a band of column labels on top and
    `title_lines` lines of title above everything."""
    rows = math.ceil(n_pairs / columns)
    cols = min(columns, n_pairs)
    cell_w, cell_h = 2 * tile + PAD, tile + PAD + (CAPTION_H * caption_lines if captions else 0)
    return cols * cell_w + PAD, rows * cell_h + PAD + (LABEL_H if labels else 0) + TITLE_H * title_lines


def real_view(real_bytes: bytes, meta: dict, size: tuple[int, int]) -> Image.Image:
    """The real image as the model saw it: EXIF-transposed, crop_box, resized to `size` (bicubic)."""
    with Image.open(io.BytesIO(real_bytes)) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    left, top, right, bottom = (int(v) for v in meta["crop_box"])
    return upright.crop((left, top, right, bottom)).resize(size, Image.Resampling.BICUBIC)


def _readable_samples(shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The samples of `shard` up to where it stops being readable (a truncated tar is logged)."""
    try:
        yield from iter_tar_samples(str(shard))
    except (tarfile.TarError, OSError) as err:
        log.warning("%s: unreadable from here on (%s: %s); the rest is left out of the grid",
                    shard.name, type(err).__name__, err)


def iter_pairs(shards: Sequence[Path], n: int) -> Iterator[tuple[str, Image.Image, Image.Image]]:
    """(key, real view, aug) for the first `n` samples whose pair decodes; others are logged."""
    found = 0
    for shard in shards:
        for key, fields in _readable_samples(shard):
            aug_name = next((f for f in AUG_MEMBERS if f in fields), None)
            if aug_name is None or REAL not in fields or JSON not in fields:
                log.warning("%s [%s]: left out of the grid: incomplete pair", shard.name, key)
                continue
            try:
                with Image.open(io.BytesIO(fields[aug_name])) as raw:
                    aug = raw.convert("RGB")
                real = real_view(fields[REAL], json.loads(fields[JSON]), aug.size)
            except _PAIR_ERRORS as err:
                log.warning("%s [%s]: left out of the grid: %s", shard.name, key, err or type(err).__name__)
                continue
            yield key, real, aug
            found += 1
            if found >= n:
                return


def sheet_format(out: str | Path) -> str:
    """The PIL format for writing a sheet to `out`, after checking that it can be written there:
    a known extension, an existing writable folder. ValueError naming the problem otherwise."""
    out = Path(out)
    fmt = SHEET_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"{out}: unknown image extension {out.suffix or '(none)'!r}; "
                         f"end the name in one of {', '.join(SHEET_FORMATS)}")
    folder = out.parent
    if not folder.exists():
        raise ValueError(f"{out}: folder {folder} does not exist; create it first or choose another path")
    if not folder.is_dir():
        raise ValueError(f"{out}: {folder} is not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{out}: folder {folder} is not writable; choose another path")
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give a file name such as {out / 'grid.png'}")
    return fmt


def write_contact_sheet(shards: Sequence[Path], out: Path, n: int = 16, tile: int | None = None,
                        columns: int = 4, captions: bool = True, labels: bool = False) -> dict:
    """Write an image of up to `n` real|aug pairs in the format of `out`'s extension (see sheet_format);
    tile = side of each image (default: the first aug's width); captions (the keys) are wrapped onto as
    many lines as the longest needs, never cut; `labels`: "real" and "aug" above each column (what
    `genaug inspect --grid` draws). Returns {"path", "pairs", "tile", "size"}; ValueError for a bad `out`
    (checked first) or if no pair decodes, OSError if writing fails."""
    if n < 1:
        raise ValueError(f"n={n}: need n >= 1 pairs")
    _check_layout(columns, tile)
    sheet_format(out)
    pairs = list(iter_pairs(shards, n))
    if not pairs:
        raise ValueError("no sample with a decodable real.jpg, aug image and json to show")
    return write_sheet(pairs, out, tile=tile, columns=columns, captions=captions, labels=labels)


def write_sheet(cells: Sequence[tuple[str, Image.Image, Image.Image]], out: str | Path, tile: int | None = None,
                columns: int = 4, captions: bool = True, labels: bool = False, title: str | None = None) -> dict:
    """The one contact-sheet renderer (`inspect --grid` and `genaug report`): cells are (caption, real,
    aug) PIL images, each shown real | aug at tile x tile (default: the first aug's width); captions and
    the optional `title` (above the sheet) are wrapped, never cut. Written in `out`'s format (see
    sheet_format). Returns {"path", "pairs", "tile", "size"}; ValueError for bad arguments or no cells."""
    _check_layout(columns, tile)
    fmt = sheet_format(out)
    if not cells:
        raise ValueError(f"{out}: no pairs to draw" + (f" for {title!r}" if title else ""))
    side = tile or cells[0][2].size[0]
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(measure, font, caption, 2 * side) for caption, _, _ in cells] if captions else []
    lines = max((len(w) for w in wrapped), default=1)
    width, _ = sheet_size(len(cells), side, columns, captions, lines, labels)
    title_lines = _wrap(measure, font, title, width - 2 * PAD) if title else []
    width, height = sheet_size(len(cells), side, columns, captions, lines, labels, len(title_lines))
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for j, text in enumerate(title_lines):
        draw.text((PAD, PAD - 2 + j * TITLE_H), text, fill=TEXT, font=font)
    top = PAD + TITLE_H * len(title_lines)
    if labels:
        _draw_labels(draw, font, min(columns, len(cells)), side, top)
        top += LABEL_H
    for i, (_, real, aug) in enumerate(cells):
        row, col = divmod(i, columns)
        x = PAD + col * (2 * side + PAD)
        y = top + row * (side + PAD + (CAPTION_H * lines if captions else 0))
        sheet.paste(real.resize((side, side), Image.Resampling.BICUBIC), (x, y))
        sheet.paste(aug.resize((side, side), Image.Resampling.BICUBIC), (x + side, y))
        for j, text in enumerate(wrapped[i] if captions else []):
            draw.text((x, y + side + 1 + j * CAPTION_H), text, fill=TEXT, font=font)
    out = Path(out)
    sheet.save(out, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    return {"path": str(out), "pairs": len(cells), "tile": side, "size": [width, height]}


def _check_layout(columns: int, tile: int | None) -> None:
    if columns < 1 or (tile is not None and tile < 8):
        raise ValueError(f"columns={columns}, tile={tile}: need columns >= 1, tile >= 8")


def _draw_labels(draw: ImageDraw.ImageDraw, font, columns: int, side: int, top: int) -> None:
    """ "real" and "aug" centred above each column of a row of `columns` pairs (a band LABEL_H high)."""
    for col in range(columns):
        x = PAD + col * (2 * side + PAD)
        for offset, text in ((0, "real"), (side, "aug")):
            left = x + offset + max(0, (side - draw.textlength(text, font=font)) / 2)
            draw.text((left, top - 2), text, fill=TEXT, font=font)


def _wrap(draw: ImageDraw.ImageDraw, font, text: str, width: int) -> list[str]:
    """`text` split into lines that each fit in `width` pixels (at least one character a line)."""
    lines, line = [], ""
    for char in text:
        if line and draw.textlength(line + char, font=font) > width:
            lines.append(line)
            line = ""
        line += char
    return lines + [line] if line or not lines else lines
