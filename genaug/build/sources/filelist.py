"""File-list sources: a text/CSV list of ``path[,label]`` lines (rules in docs/inputs-and-inspect.md).

Labels are taken as ImageNet-1k class indices (0..999, sorted-wnid order) for class-conditional
editors; the list is read line by line, so memory does not grow with its length.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import IO, Iterator

from genaug.build.sources.base import LABEL, Source, SourceError, is_image_name, slug_key, strip_suffix

HEADER_NAMES = frozenset({"path", "file", "filename", "filepath", "image", "img"})  # tolerated header words


class FileListSource(Source):
    """A text/CSV list of `path[,label]` lines (see parse_list); validated fully at construction.

    Key: path_key of the path as written, hashed together with its line number (so a path listed
    twice still gets two distinct keys)."""

    kind = "file-list"

    def __init__(self, list_path: Path, named: str | None = None):
        self.list_path = list_path
        self.named = named or f"--data {list_path}"
        self.base = list_path.parent
        self.root = str(self.base)
        self.labelled = False
        count = 0
        for count, (_, _, label) in enumerate(self._lines(), start=1):
            if count == 1:
                self.labelled = label is not None
            elif (label is not None) != self.labelled:
                raise SourceError(f"{self.named}: some lines have a label and some do not; "
                                  "give every line a label or none")
        if count == 0:
            raise SourceError(f"{self.named}: the file list has no entries")
        self.description = f"file list {list_path} ({count} entries, {'labelled' if self.labelled else 'unlabelled'})"

    def _lines(self) -> Iterator[tuple[int, str, int | None]]:
        delimiter = "\t" if self.list_path.suffix.lower() == ".tsv" else ","
        try:
            with open(self.list_path, newline="", encoding="utf-8") as handle:
                yield from parse_list(handle, delimiter, str(self.list_path))
        except UnicodeDecodeError as err:
            raise SourceError(f"{self.named}: not a UTF-8 text file list ({err.reason}); "
                              "give a folder, shards, or a text list of path[,label] lines") from err

    def _records(self):
        for lineno, path, label in self._lines():
            full = path if os.path.isabs(path) else os.path.join(self.base, path)
            yield slug_key(strip_suffix(path), hashed=f"{lineno}:{path}"), full, label, None, None


def parse_list(handle: IO[str], delimiter: str, name: str) -> Iterator[tuple[int, str, int | None]]:
    """(line number, path, label) per entry. Blank lines and lines starting with '#' are skipped; the
    first entry is a header (skipped) when _is_header says so. Raise SourceError naming the line for anything else malformed."""
    first = True
    for lineno, row in enumerate(csv.reader(handle, delimiter=delimiter), start=1):
        fields = [f.strip() for f in row]
        if not fields or not any(fields) or fields[0].startswith("#"):
            continue
        if first:
            first = False
            if _is_header(fields):
                continue
        if len(fields) > 2 or not fields[0]:
            raise SourceError(f"{name}, line {lineno}: expected 'path' or 'path,label', got {row!r}")
        label = None
        if len(fields) == 2:
            if not LABEL.fullmatch(fields[1]):
                raise SourceError(f"{name}, line {lineno}: label {fields[1]!r} is not a non-negative integer")
            label = int(fields[1])
        yield lineno, fields[0], label


def _is_header(fields: list[str]) -> bool:
    """'path' alone, or two fields whose first has no image suffix and whose second is no integer."""
    if len(fields) == 1:
        return fields[0].lower() in HEADER_NAMES
    return len(fields) == 2 and not is_image_name(fields[0]) and not LABEL.fullmatch(fields[1])
