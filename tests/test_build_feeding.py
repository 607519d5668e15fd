"""Nothing on the feeding thread that the device waits for: shards are finished (md5/sha256, fsync,
rename, stats) on the finisher thread, errors there still stop the build; the start-up probe is one call
on the CPU."""

import json
import threading

import pytest
import torch
from imagefactory import make_imagenet_folder

from genaug.build.pipeline import BuildError, run_build
from genaug.build.probe import probe_batch1_ms, probe_plan
from genaug.build.shard import ShardRun
from genaug.registry import REGISTRY, EditorContext
from genaug.testing import editors

pytestmark = pytest.mark.usefixtures("test_method")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"), n_classes=3, per_class=4)


def _config(folder, out, **kw):
    return editors.build_config(out, folder["train"], **{"shard_size": 4, "batch_size": 2, "seed": 3,
                                                         "options": {"amplitude": 2}, **kw})


def test_shards_are_finished_off_the_feeding_thread_with_the_same_bytes(folder, tmp_path, monkeypatch):
    reference = tmp_path / "ref"
    run_build(_config(folder, reference))
    threads, finish = [], ShardRun.finish

    def spy(self):
        threads.append(threading.current_thread().name)
        return finish(self)

    monkeypatch.setattr(ShardRun, "finish", spy)
    out = tmp_path / "out"
    summary = run_build(_config(folder, out))
    assert summary.shards == len(threads) >= 3
    assert all(name.startswith("genaug-shard-finish") for name in threads)
    assert threading.current_thread().name not in threads
    for tar in sorted(reference.glob("shard-*.tar")):
        assert (out / tar.name).read_bytes() == tar.read_bytes()
        stats = [json.loads((d / tar.name.replace(".tar", ".json")).read_text()) for d in (out, reference)]
        assert stats[0]["sha256"] == stats[1]["sha256"] and stats[0]["nsamples"] == stats[1]["nsamples"]
    assert (out / "index.json").is_file() and (out / "manifest.json").is_file()
    assert not [t for t in threading.enumerate() if t.name.startswith("genaug-shard-finish")]


def test_an_error_while_finishing_stops_the_build_and_a_rerun_resumes(folder, tmp_path, monkeypatch):
    finish, calls = ShardRun.finish, []

    def failing(self):
        calls.append(self.index)
        if self.index == 1:
            raise OSError(28, "No space left on device")
        return finish(self)

    monkeypatch.setattr(ShardRun, "finish", failing)
    out = tmp_path / "out"
    with pytest.raises(BuildError, match="No space left on device"):
        run_build(_config(folder, out))
    assert (out / "shard-0000.json").is_file() and not (out / "shard-0001.json").exists()
    monkeypatch.setattr(ShardRun, "finish", finish)
    summary = run_build(_config(folder, out))
    assert summary.shards_resumed >= 1 and summary.samples == len(folder["good"])


def test_the_start_up_probe_is_one_batch_1_call_on_the_cpu():
    preset = REGISTRY.preset("icgan-tiny")
    editor = preset.build(EditorContext(preset, {}, torch.device("cpu"), "fp32",
                                        REGISTRY.method("noise").validate_options({})))
    seen, encoder = [], editor.encoder
    editor.encoder = lambda x: (seen.append(x.shape[0]), encoder(x))[1]
    assert probe_plan(torch.device("cpu")) == {"repeats": 1, "warmup": False}
    assert probe_plan(torch.device("cuda")) == {"repeats": 3, "warmup": True}
    assert probe_batch1_ms(editor, torch.device("cpu"), seed=0, **probe_plan(torch.device("cpu"))) > 0
    assert seen == [1]
