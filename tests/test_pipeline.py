"""End-to-end builds through the library (run_build) with the test editor and the tiny presets."""

import dataclasses
import io
import json

import numpy as np
import pytest
import torch
from imagefactory import make_imagenet_folder, make_wds_shards
from PIL import Image

from genaug.build import batches, pipeline
from genaug.build.chunks import count_inputs_in_background, iter_batches
from genaug.build.pipeline import BuildConfig, BuildError, run_build
from genaug.build.preprocess import prepare
from genaug.build.sources import SourceItem, open_source
from genaug.report.scores import compute_scores
from genaug.seeding import sample_seed
from genaug.testing import editors

SHARD_SIZE = 5
CONTRACT_FIELDS = {
    "key", "source", "label", "wnid", "orig_size", "orig_mode", "orig_format", "exif_transposed", "crop_box",
    "resolution", "method", "preset", "weights_sha256", "seed", "run_seed", "edit", "genaug_version",
}


pytestmark = pytest.mark.usefixtures("test_method")  # tests/conftest.py: editors registered for this module


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"), n_classes=3, per_class=4)


def _config(folder, out, **kw) -> BuildConfig:
    return editors.build_config(out, folder["train"], **{"shard_size": SHARD_SIZE, "batch_size": 3, "seed": 7,
                                                         "options": {"amplitude": 6}, **kw})


@pytest.fixture(scope="module")
def baseline(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    summary = run_build(_config(folder, out))
    return out, summary


def test_every_good_file_is_a_pair_and_every_bad_file_an_error(folder, baseline):
    out, summary = baseline
    n_inputs = len(folder["files"])
    assert (summary.inputs, summary.samples, summary.errors) == (n_inputs, len(folder["good"]), len(folder["skipped"]))
    assert summary.shards == -(-n_inputs // SHARD_SIZE)

    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(e["path"] for e in errors) == sorted(str(p) for p in folder["skipped"])
    assert all(set(e) == {"key", "path", "reason", "shard"} and e["reason"] for e in errors)

    samples = editors.read_samples(out)
    by_source = {json.loads(s["json"])["source"]: s for s in samples.values()}
    assert sorted(by_source) == sorted(str(p) for p in folder["good"])
    for path in folder["good"]:
        sample = by_source[str(path)]
        meta = json.loads(sample["json"])
        assert CONTRACT_FIELDS <= set(meta) and "scores" not in meta
        assert meta["key"] == sample["__key__"]
        assert meta["label"] == folder["labels"][path] == int(sample["cls"])
        assert meta["wnid"] == folder["wnids"][meta["label"]]
        assert meta["seed"] == sample_seed(7, meta["key"]) and meta["run_seed"] == 7
        assert (meta["method"], meta["preset"], meta["resolution"]) == ("test", "test-invert", editors.RESOLUTION)
        # the aug image is this sample's own inverted model input (plus noise of amplitude 6 and JPEG)
        model_input = prepare(sample["real.jpg"], editors.RESOLUTION).image.astype(np.int16)
        aug = np.asarray(Image.open(io.BytesIO(sample["aug.jpg"])).convert("RGB"), dtype=np.int16)
        assert aug.shape == (editors.RESOLUTION, editors.RESOLUTION, 3)
        assert np.abs((255 - model_input) - aug).mean() < 12
    rgb_jpeg = folder["good"][0]
    assert by_source[str(rgb_jpeg)]["real.jpg"] == rgb_jpeg.read_bytes()  # original bytes kept

    index = json.loads((out / "index.json").read_text())
    assert sum(s["nsamples"] for s in index["shardlist"]) == summary.samples
    stats = json.loads((out / "shard-0000.json").read_text())
    assert set(stats["timings_s"]) >= {"read_decode", "model", "encode", "write", "wall"}
    assert stats["nsamples"] + stats["nerrors"] == stats["ninputs"] == SHARD_SIZE
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["samples"] == summary.samples
    assert manifest["timing"]["batch1_ms_per_image"] > 0 and manifest["timing"]["batch_size"] == 3
    assert manifest["editor"]["amplitude"] == 6 and "torch" in manifest["versions"]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_same_settings_give_identical_bytes(folder, baseline, tmp_path):
    run_build(_config(folder, tmp_path / "again"))
    assert editors.output_bytes(tmp_path / "again") == editors.output_bytes(baseline[0])
    run_build(_config(folder, tmp_path / "seed8", seed=8))
    assert editors.output_bytes(tmp_path / "seed8")["shard-0000.tar"] != editors.output_bytes(baseline[0])["shard-0000.tar"]


@pytest.mark.parametrize("lag", [0, 3])
def test_waiting_for_the_editor_later_gives_the_same_bytes(folder, baseline, tmp_path, monkeypatch, lag):
    """The build waits for a batch's output one batch later (_Runner.edit_lag 1, the baseline); waiting at once
    (0, as before) or after more batches than a shard holds (3) writes the same shards, errors and index."""
    monkeypatch.setattr(pipeline._Runner, "edit_lag", lag)
    run_build(_config(folder, tmp_path))
    assert editors.output_bytes(tmp_path) == editors.output_bytes(baseline[0])


def test_the_host_copy_of_a_cpu_edit_is_the_output_itself():
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    host, copied = batches._copy_to_host(images)
    assert host is images and copied is None


@pytest.mark.slow
def test_batch_size_and_worker_processes_do_not_change_bytes(folder, baseline, tmp_path):
    run_build(_config(folder, tmp_path / "b1", batch_size=1))
    run_build(_config(folder, tmp_path / "w2", batch_size=4, num_workers=2))
    expected = editors.output_bytes(baseline[0])
    assert editors.output_bytes(tmp_path / "b1") == expected
    assert editors.output_bytes(tmp_path / "w2") == expected


def test_editor_failure_aborts_keeps_finished_shards_and_resumes(folder, baseline, tmp_path):
    out = tmp_path / "fail"
    first_label2 = min(i for i, p in enumerate(folder["files"]) if folder["labels"][p] == 2)
    with pytest.raises(BuildError, match="failed on a batch of shard"):
        run_build(_config(folder, out, options={"amplitude": 6, "fail_label": 2}))
    done = sorted(p.name for p in out.glob("shard-*"))
    n_done = first_label2 // SHARD_SIZE
    assert n_done >= 1
    assert done == sorted([f"shard-{i:04d}.tar" for i in range(n_done)] + [f"shard-{i:04d}.json" for i in range(n_done)])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind
    assert len(editors.read_samples(out)) == sum(
        json.loads((out / f"shard-{i:04d}.json").read_text())["nsamples"] for i in range(n_done))
    summary = run_build(_config(folder, out))  # fail_label does not affect output: this resumes
    assert summary.shards_resumed == n_done
    assert editors.output_bytes(out) == editors.output_bytes(baseline[0])


class _Recorder:
    """A Progress that records what the build reports."""

    def __init__(self):
        self.total, self.updates = "unset", []

    def start(self, total):
        self.total = total

    def update(self, n):
        self.updates.append(n)

    def set_total(self, total):
        self.counted = total


def test_limit_covers_the_first_inputs_only(folder, tmp_path):
    progress = _Recorder()
    summary = run_build(_config(folder, tmp_path, limit=7), progress=progress)
    assert summary.inputs == 7 and summary.shards == 2
    assert progress.total == 7 and sum(progress.updates) == 7
    sources = {json.loads(s["json"])["source"] for s in editors.read_samples(tmp_path).values()}
    errors = [json.loads(line)["path"] for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert sorted(sources | set(errors)) == sorted(str(p) for p in folder["files"][:7])


def _chw(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]


def test_progress_gets_the_input_count_for_an_eta(folder, tmp_path):
    progress = _Recorder()
    source = open_source(str(folder["train"]))
    count_inputs_in_background(source, None, progress).join(timeout=60)
    assert progress.counted == len(folder["files"])
    count_inputs_in_background(source, 5, progress).join(timeout=60)
    assert progress.counted == 5


def test_input_shards_keep_keys_labels_and_bytes(tmp_path):
    shards = make_wds_shards(tmp_path / "in", n_shards=2, per_shard=3)
    config = BuildConfig(method=editors.METHOD, out=tmp_path / "out", data=(shards["pattern"],), shard_size=4,
                         batch_size=2, num_workers=0)
    summary = run_build(config)
    assert (summary.samples, summary.errors, summary.shards) == (6, 0, 2)
    samples = editors.read_samples(tmp_path / "out")
    by_key = {json.loads(s["json"])["source"].rsplit("#", 1)[-1]: s for s in samples.values()}
    assert sorted(by_key) == sorted(shards["keys"])
    for key, label in zip(shards["keys"], shards["labels"]):
        assert by_key[key]["real.jpg"] == shards["images"][key]  # RGB JPEG bytes kept as they were
        assert int(by_key[key]["cls"]) == label


def test_ssim_scores_match_a_recomputation(folder, tmp_path):
    run_build(_config(folder, tmp_path, aug_format="png", scores=("ssim",), limit=6))
    samples = editors.read_samples(tmp_path)
    assert samples
    for sample in samples.values():
        real = prepare(sample["real.jpg"], editors.RESOLUTION).image
        aug = np.asarray(Image.open(io.BytesIO(sample["aug.png"])).convert("RGB"))
        expected = compute_scores(["ssim"], _chw(real), _chw(aug))["ssim"][0]
        assert json.loads(sample["json"])["scores"]["ssim"] == pytest.approx(expected, abs=1e-6)
        assert -1 <= expected < 0.5  # an inverted image is far from its original


def test_scores_with_an_editor_of_another_output_size(folder, tmp_path):
    run_build(_config(folder, tmp_path, preset="test-invert-x2", scores=("ssim",), limit=4))
    for sample in editors.read_samples(tmp_path).values():
        assert Image.open(io.BytesIO(sample["aug.jpg"])).size == (48, 48)
        assert -1 <= json.loads(sample["json"])["scores"]["ssim"] <= 1


def test_maskgit_tiny_preset_end_to_end(folder, tmp_path):
    summary = run_build(_config(folder, tmp_path, method="mask", preset="maskgit-tiny", options={},
                                batch_size=4, limit=5, shard_size=5))
    samples = editors.read_samples(tmp_path)
    assert len(samples) == summary.samples == 5 - sum(1 for p in folder["files"][:5] if p in folder["skipped"])
    for sample in samples.values():
        meta = json.loads(sample["json"])
        assert (meta["method"], meta["preset"]) == ("mask", "maskgit-tiny") and isinstance(meta["edit"], dict)
        assert Image.open(io.BytesIO(sample["aug.jpg"])).size[0] == meta["resolution"]


def test_iter_batches_groups_within_chunks_and_skips_done_chunks():
    items = [SourceItem(index=i, key=f"k{i}", source=f"p{i}", label=None, wnid=None, data=None) for i in range(11)]
    events = list(iter_batches(iter(items), shard_size=4, batch_size=3, limit=10, skip={1}))
    shape = [(type(e).__name__, e.chunk, [it.index for it in getattr(e, "items", [])]) for e in events]
    assert shape == [
        ("_Batch", 0, [0, 1, 2]), ("_Batch", 0, [3]), ("_ChunkEnd", 0, []),
        ("_Batch", 2, [8, 9]), ("_ChunkEnd", 2, []),
    ]


def test_config_is_frozen():
    config = BuildConfig(method="test", out="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3


@pytest.mark.gpu
def test_cuda_host_copy_is_pinned_non_blocking_and_waiting_later_keeps_bytes(folder, tmp_path, monkeypatch):
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, device="cuda")
    host, copied = batches._copy_to_host(images)
    assert host.is_pinned() and isinstance(copied, torch.cuda.Event)
    copied.synchronize()
    assert torch.equal(host, images.cpu())
    common = dict(method="mask", preset="maskgit-tiny", options={}, device="cuda", precision="fp32", limit=8,
                  batch_size=2)
    run_build(_config(folder, tmp_path / "lag1", **common))
    monkeypatch.setattr(pipeline._Runner, "edit_lag", 0)
    run_build(_config(folder, tmp_path / "lag0", **common))
    assert editors.output_bytes(tmp_path / "lag1") == editors.output_bytes(tmp_path / "lag0")


@pytest.mark.gpu
def test_cuda_build_is_batch_size_independent(folder, tmp_path):
    """On CUDA (pinned host batches, non-blocking copies): maskgit-tiny in fp32 at batch 1 and 4
    writes identical shards, and every sample reads back."""
    common = dict(method="mask", preset="maskgit-tiny", options={}, device="cuda", precision="fp32", limit=8)
    run_build(_config(folder, tmp_path / "b1", batch_size=1, **common))
    run_build(_config(folder, tmp_path / "b4", batch_size=4, num_workers=2, **common))
    assert editors.output_bytes(tmp_path / "b1") == editors.output_bytes(tmp_path / "b4")
    stats = json.loads((tmp_path / "b4" / "shard-0000.json").read_text())
    assert stats["device"].startswith("cuda") and stats["device_name"]
    assert len(editors.read_samples(tmp_path / "b4")) == stats["nsamples"] > 0
