"""Every fenced bash/python block of README.md and docs/*.md runs as written on the quickstart's output.

One quickstart build per session (the README's own build command), then each block runs in a fresh
temporary folder holding a copy of ``shards/`` and links to ``examples/`` and ``benchmarks/``: python blocks in-process
(torch at one thread, see conftest.py), bash blocks with ``bash -euo pipefail``.

A block that cannot run here (official weights, a GPU, ImageNet, network installs) is skipped only when
the line directly before its fence is ``<!-- snippet: skip (reason) -->``; every skip must give a reason.
Output-only blocks use a non-code fence (```text).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"^<!-- snippet: skip(?: \((?P<reason>.*)\))? -->$")
QUICKSTART_BUILD = "genaug build --method mask --preset maskgit-tiny --class-token random --out shards/"


@dataclasses.dataclass(frozen=True)
class Snippet:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str  # "bash" | "python"
    code: str
    skip: str | None  # the marker's reason ("" when the marker has none); None: the block runs

    @property
    def id(self) -> str:
        return f"{self.doc.name}:{self.line}"


def collect(doc: Path) -> list[Snippet]:
    text = doc.read_text()
    snippets = []
    for match in FENCE.finditer(text):
        lang = RUNNABLE.get(match.group(1).lower())
        if lang is None:
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        marker = MARKER.match(before)
        skip = None if marker is None else (marker.group("reason") or "").strip()
        snippets.append(Snippet(doc, line, lang, match.group(2), skip))
    return snippets


SNIPPETS = [s for doc in DOCS for s in collect(doc)]


def _marks(snippet: Snippet):
    if snippet.skip is not None:
        return [pytest.mark.skip(reason=f"marked in the doc: {snippet.skip}")]
    return []


def test_every_skip_has_a_reason_and_sits_on_a_fence():
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        for number, line in enumerate(lines):
            if "snippet:" not in line or not line.startswith("<!--"):
                continue
            marker = MARKER.match(line.strip())
            assert marker and (marker.group("reason") or "").strip(), f"{doc.name}:{number + 1}: no reason: {line}"
            following = lines[number + 1] if number + 1 < len(lines) else ""
            assert following.startswith("```"), f"{doc.name}:{number + 1}: the marker is not directly before a fence"
    assert all(s.skip for s in SNIPPETS if s.skip is not None)


def test_quickstart_build_is_the_readme_command():
    assert QUICKSTART_BUILD in (ROOT / "README.md").read_text()


def test_loader_doc_has_the_promised_snippets():
    loader = [s.code for s in SNIPPETS if s.doc.name == "loader.md" and s.lang == "python"]
    assert len(loader) >= 7
    for adapter in ("solo-learn", "lightly", "vicreg"):
        assert f'adapter="{adapter}"' in "\n".join(loader)


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory) -> Path:
    """The quickstart's output: the README's build command over the bundled photos, run once."""
    where = tmp_path_factory.mktemp("quickstart")
    env = {**os.environ, "GENAUG_HOME": str(where / "home"), "OMP_NUM_THREADS": "1",
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    env.pop("GENAUG_DATA", None)
    done = subprocess.run(QUICKSTART_BUILD, shell=True, cwd=where, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "shards"


@pytest.fixture
def workdir(quickstart, tmp_path, monkeypatch) -> Path:
    shutil.copytree(quickstart, tmp_path / "shards")
    for folder in ("examples", "benchmarks"):  # commands in the docs run from the repository root
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    return tmp_path


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # 4 workers on a 2-core box
@pytest.mark.parametrize("snippet", [pytest.param(s, id=s.id, marks=_marks(s)) for s in SNIPPETS])
def test_snippet_runs(snippet: Snippet, workdir: Path, capsys):
    if snippet.lang == "python":
        exec(compile(snippet.code, f"{snippet.id}", "exec"), {"__name__": "__snippet__"})
        if snippet.doc.name == "loader.md":
            assert capsys.readouterr().out.strip(), "every loader.md snippet prints what it got"
        return
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", snippet.code], cwd=workdir, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{snippet.id} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
