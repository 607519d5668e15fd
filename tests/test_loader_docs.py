"""Every python snippet in docs/loader.md runs against tiny shards in ./shards/."""

import re
from pathlib import Path

import pytest

from genaug.testing.shardfactory import make_shards

DOC = Path(__file__).resolve().parents[1] / "docs" / "loader.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_has_the_promised_snippets():
    text = "\n".join(SNIPPETS)
    assert len(SNIPPETS) >= 7
    for adapter in ("solo-learn", "lightly", "vicreg"):
        assert f'adapter="{adapter}"' in text


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # 4 workers on a 2-core box
@pytest.mark.parametrize("number", range(len(SNIPPETS)))
def test_snippet_runs(number, tmp_path, monkeypatch, capsys):
    make_shards(tmp_path / "shards", n_samples=16, shard_size=4)
    monkeypatch.chdir(tmp_path)
    exec(compile(SNIPPETS[number], f"{DOC.name}[snippet {number}]", "exec"), {"__name__": "snippet"})
    assert capsys.readouterr().out.strip()  # every snippet prints what it got
