"""Report building blocks: classic augmentations, the real reference crop, cost columns, time breakdown."""

import io
import json
import logging
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from genaug.report import classic, tables
from genaug.report.reader import ReportInputError, discover, iter_pairs
from genaug.report.scores import ssim
from genaug.testing.shardfactory import make_shards


def _image(seed: int, size: int = 48) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand((1, 3, 6, 6), generator=gen) * 255
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")[0].round().to(torch.uint8)


# ---------------------------------------------------------------- classic augmentations

@pytest.mark.parametrize("name", classic.CLASSIC)
def test_classic_depends_only_on_seed_key_and_name(name):
    images = torch.stack([_image(0), _image(1), _image(2)])
    keys = ["a", "b", "c"]
    batch = classic.augment_batch(name, images, seed=7, keys=keys)
    alone = classic.augment_one(name, images[1], seed=7, key="b")
    assert batch.dtype == torch.uint8 and batch.shape == images.shape
    assert torch.equal(batch[1], alone)
    assert torch.equal(classic.augment_batch(name, images, seed=7, keys=keys), batch)
    assert not torch.equal(classic.augment_batch(name, images, seed=8, keys=keys), batch)


def test_crop_box_follows_scale_and_ratio_limits():
    settings = classic.ClassicSettings()
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = classic.sample_crop_box(64, 64, gen, settings)
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 64
        assert 0.08 * 64 * 64 * 0.8 <= h * w <= 64 * 64
        assert 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1


def test_degenerate_settings_give_identity():
    """Full-image crop, zero jitter and a tiny blur leave the image (almost) unchanged."""
    image = _image(3)
    still = classic.ClassicSettings(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), brightness=0.0,
                                    contrast=0.0, saturation=0.0, hue=0.0, blur_sigma=(0.01, 0.01))
    for name in classic.CLASSIC:
        out = classic.augment_one(name, image, seed=0, key="k", settings=still)
        assert (out.int() - image.int()).abs().max() <= 2, name


def test_vicreg_strength_changes_images_as_expected():
    """Blur keeps structure best, crop the least (the ordering of the paper's Table 4 SSIM column)."""
    images = torch.stack([_image(s, size=64) for s in range(8)])
    keys = [f"k{i}" for i in range(8)]
    mean = {n: float(ssim(images, classic.augment_batch(n, images, 0, keys)).mean()) for n in classic.CLASSIC}
    assert mean["crop"] < mean["gaussian_blur"] and mean["color_jitter"] < mean["gaussian_blur"] < 1.0


def test_unknown_classic_name():
    with pytest.raises(ValueError, match="unknown classic augmentation 'rotate'"):
        classic.augment_one("rotate", _image(0), 0, "k")


# ---------------------------------------------------------------- reader: the real reference

def _write_pair_shard(path, real: Image.Image, aug: Image.Image, box, resolution):
    meta = {"key": "s0", "crop_box": list(box), "resolution": resolution, "method": "noise", "preset": "p"}
    members = {"s0.real.jpg": real, "s0.aug.png": aug}
    with tarfile.open(path, "w") as tar:
        for name, data in sorted({**{k: _encode(v, k) for k, v in members.items()},
                                  "s0.json": json.dumps(meta).encode()}.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _encode(image: Image.Image, name: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG" if name.endswith(".jpg") else "PNG", **({"quality": 95} if name.endswith(".jpg") else {}))
    return buf.getvalue()


def test_real_reference_is_crop_box_resized_to_aug_size(tmp_path):
    """aug = exact model input (crop_box, resized): SSIM ~ 1; the uncropped image would not match."""
    rng = np.random.default_rng(0)
    full = np.zeros((80, 120, 3), dtype=np.uint8)
    full[:, :20] = (255, 0, 0)  # outside the crop box
    full[:, 20:100] = np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((10, 10, 1))).astype(np.uint8)
    real = Image.fromarray(full)
    box = (20, 0, 100, 80)
    aug = real.crop(box).resize((40, 40), Image.Resampling.BICUBIC)
    _write_pair_shard(tmp_path / "shard-0000.tar", real, aug, box, 40)
    errors = []
    (pair,) = list(iter_pairs(discover([tmp_path])[0], errors))
    assert errors == [] and pair.real.shape == (40, 40, 3) and pair.aug.shape == (40, 40, 3)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    assert float(ssim(to_t(pair.real), to_t(pair.aug))[0]) > 0.95
    uncropped = np.array(real.resize((40, 40), Image.Resampling.BICUBIC))
    assert float(ssim(to_t(uncropped), to_t(pair.aug))[0]) < 0.7


def test_reader_skips_and_records_bad_samples(tmp_path):
    make_shards(tmp_path, n_samples=6, shard_size=3, labelled=False, aug_format="webp",
                broken_aug_keys=["img_00001"], missing_aug_keys=["img_00004"])
    (run,) = discover([tmp_path])
    assert [p.name for p in run.shards] == ["shard-0000.tar", "shard-0001.tar"] and len(run.stats) == 2
    errors = []
    keys = [p.key for p in iter_pairs(run, errors)]
    assert keys == ["img_00000", "img_00002", "img_00003", "img_00005"]
    assert {e["key"] for e in errors} == {"img_00001", "img_00004"}
    assert [p.key for p in iter_pairs(run, [], limit=2)] == ["img_00000", "img_00002"]
    assert [p.key for p in iter_pairs(run, [], keys={"img_00005"})] == ["img_00005"]


def test_discover_names_bad_paths(tmp_path):
    with pytest.raises(ReportInputError, match="nope"):
        discover([tmp_path / "nope"])
    with pytest.raises(ReportInputError, match="no shards given"):
        discover([])


# ---------------------------------------------------------------- cost columns and time breakdown

def _stats(model: float, decode: float, wall: float, n: int = 10) -> dict:
    return {"shard": "shard-0000.tar", "nsamples": n, "device_name": "Some GPU", "images_per_s": n / wall,
            "timings_s": {"read_decode": decode, "model": model, "encode": 0.5, "write": 0.1, "wall": wall}}


def test_time_breakdown_device_bound_and_cpu_bound():
    device = tables.time_breakdown("run", {}, [_stats(8.0, 1.0, 10.0), _stats(8.0, 1.0, 10.0)])
    assert device["bound"] == "device" and device["stages_s"]["model"] == 16.0 and device["wall_s"] == 20.0
    assert device["model_busy_share"] == pytest.approx(0.8) and "Some GPU" in device["sentence"]
    cpu = tables.time_breakdown("run", {}, [_stats(2.0, 7.0, 10.0)])
    assert cpu["bound"] == "cpu" and "read/decode (7.00 s)" in cpu["sentence"]
    extra = tables.time_breakdown("run", {}, [dict(_stats(2.0, 1.0, 10.0), timings_s={"model": 1, "scores": 3, "wall": 5})])
    assert extra["stages_s"]["scores"] == 3 and "scores (3.00 s)" in extra["sentence"]
    assert tables.time_breakdown("run", {}, [])["bound"] == "unknown"


def test_time_breakdown_tiny_run_is_overhead_not_cpu_bound():
    """QA: model 42% of a 1.32 s wall, everything else 0.01 s: start-up dominated, not the CPU side."""
    tiny = {"shard": "shard-0000.tar", "nsamples": 8, "timings_s": {"read_decode": 0.004, "model": 0.5544,
            "encode": 0.003, "write": 0.003, "wall": 1.32}}
    verdict = tables.time_breakdown("run", {}, [tiny])
    assert verdict["bound"] == "overhead" and verdict["model_busy_share"] == pytest.approx(0.42)
    assert "start-up" in verdict["sentence"] and "workers" not in verdict["sentence"]
    spread = tables.time_breakdown("run", {}, [_stats(3.0, 3.0, 10.0)])  # model 30%, others 36%
    assert spread["bound"] == "overhead"
    several = tables.time_breakdown("run", {}, [dict(_stats(3.0, 3.0, 10.0), timings_s={
        "read_decode": 3.0, "model": 3.0, "encode": 3.0, "write": 0.1, "wall": 10.0})])
    assert several["bound"] == "cpu" and several["cpu_share"] == pytest.approx(0.61)


def test_build_cost_reads_manifest_and_tolerates_gaps():
    manifest = {"timing": {"batch1_ms_per_image": 20.0, "batch_ms_per_image": 4.0, "batch_size": 64,
                           "device": "cuda", "device_name": "NVIDIA H100"}, "editor": {"parameters": 116_000_000}}
    cost = tables.build_cost(manifest, [_stats(8.0, 1.0, 10.0), _stats(8.0, 1.0, 10.0)])
    assert cost["ms_batch1"] == 20.0 and cost["images_per_s_model"] == 250.0 and cost["images_per_s_run"] == 1.0
    assert cost["parameters"] == 116_000_000 and cost["device_name"] == "NVIDIA H100"
    empty = tables.build_cost({}, [])
    assert all(empty[k] is None for k in ("ms_batch1", "ms_batch", "parameters", "device_name", "images_per_s_run"))
    cells = tables._row_cells({"kind": "generative", "label": "x", "samples": 3, "fid": None, "ssim_mean": 0.5,
                               "ssim_median": 0.5, **empty}, fid_computed=False)
    assert cells[2] == "not computed" and cells[5] == "unknown" and cells[9] == "unknown"


# ---------------------------------------------------------------- report assembly (no Inception: FID off)

def test_two_runs_get_distinct_rows_and_one_set_of_classic_rows(tmp_path):
    from genaug.report.report import ReportOptions, generate_report

    make_shards(tmp_path / "run_a", n_samples=3, shard_size=2, seed=1)
    make_shards(tmp_path / "run_b", n_samples=2, shard_size=2, seed=2)
    report = generate_report([tmp_path / "run_a", tmp_path / "run_b"], tmp_path / "out",
                             ReportOptions(batch_size=2, contact_pairs=1), features=None)
    labels = [r["label"] for r in report["rows"]]
    assert labels == ["mask (shardfactory-synthetic) [run_a]", "mask (shardfactory-synthetic) [run_b]",
                      "Crop", "Color jitter", "Gaussian blur"]
    assert [r["samples"] for r in report["rows"]] == [3, 2, 3, 3, 3]
    assert all(r["fid"] is None for r in report["rows"]) and report["warnings"] == []
    assert report["settings"]["classic"]["images"].endswith("[run_a]")
    assert len(report["pictures"]["contact_sheets"]) == 2 and len(report["time"]) == 2
    assert "not computed" in (tmp_path / "out" / "report.md").read_text()


def test_pick_pairs_best_median_worst():
    from genaug.report.report import Row, _pick_pairs

    row = Row(label="x", kind="generative", run=None, keys=list("abcdefg"), ssim=[0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2])
    picks = _pick_pairs(row, per_kind=2)
    assert [(kind, key) for kind, key, _ in picks] == [
        ("best", "b"), ("best", "f"), ("median", "d"), ("median", "a"), ("worst", "c"), ("worst", "g")]
    assert [key for kind, key, _ in _pick_pairs(row, per_kind=1)] == ["b", "a", "c"]  # a holds the median 0.5


@pytest.mark.parametrize("field, value, match", [
    ("batch_size", 0, "batch_size=0"), ("max_samples", 0, "max_samples=0"), ("device", "tpux", "device='tpux'")])
def test_report_options_are_validated_before_work(tmp_path, field, value, match):
    from genaug.report.report import ReportOptions, generate_report

    with pytest.raises(ValueError, match=match):
        generate_report([tmp_path / "missing"], tmp_path / "out", ReportOptions(**{field: value}), features=None)
    assert not (tmp_path / "out").exists()


def test_truncated_shard_is_skipped_and_listed_under_warnings(tmp_path):
    from genaug.report.report import ReportOptions, generate_report

    paths = make_shards(tmp_path / "run", n_samples=6, shard_size=3)
    with tarfile.open(paths[1]) as tar:
        member = tar.getmembers()[-2]  # cut inside its data: tarfile raises ReadError mid-shard
    paths[1].write_bytes(paths[1].read_bytes()[: member.offset_data + member.size // 2])
    report = generate_report([tmp_path / "run"], tmp_path / "out",
                             ReportOptions(batch_size=2, contact_pairs=1, classic=False), features=None)
    assert 3 <= report["rows"][0]["samples"] < 6  # shard 0 and what shard 1 held before the cut
    (warning,) = [w for w in report["warnings"] if "shard-0001.tar" in w]
    assert "unreadable shard" in warning and "left out" in warning
    assert report["errors"]["count"] == 0  # no sample-level errors
    assert "shard-0001.tar: unreadable shard" in (tmp_path / "out" / "report.md").read_text()


def test_unfinished_build_is_a_report_warning(tmp_path):
    from genaug.report.report import ReportOptions, generate_report

    make_shards(tmp_path / "run", n_samples=2, shard_size=2)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(dict(manifest, status="running")))
    report = generate_report([tmp_path / "run"], tmp_path / "out",
                             ReportOptions(batch_size=2, contact_pairs=1, classic=False), features=None)
    (warning,) = [w for w in report["warnings"] if "build not finished" in w]
    assert "1 shard(s) done" in warning and "only the finished shards" in warning


def test_shard_cut_at_a_member_boundary_is_a_shard_warning(tmp_path):
    from genaug.report.report import ReportOptions, generate_report

    paths = make_shards(tmp_path / "run", n_samples=8, shard_size=4)
    with tarfile.open(paths[1]) as tar:
        second = [m for m in tar.getmembers() if m.name.endswith(".aug.jpg")][1]
    paths[1].write_bytes(paths[1].read_bytes()[: second.offset])  # 512-byte multiple: tarfile sees a clean end
    report = generate_report([tmp_path / "run"], tmp_path / "out",
                             ReportOptions(batch_size=2, contact_pairs=1, classic=False), features=None)
    assert report["rows"][0]["samples"] == 5
    (warning,) = [w for w in report["warnings"] if "shard-0001.tar" in w]
    assert warning == ("shard-0001.tar: read 1 of 4 samples recorded in its stats file; the shard is damaged — "
                       "rerun the build or genaug inspect --verify")
    assert f"- {warning}" in (tmp_path / "out" / "report.md").read_text()
    assert not [w for w in report["warnings"] if "shard-0000.tar" in w]


def test_shard_cut_after_its_last_sample_reads_clean_without_warning(tmp_path):
    paths = make_shards(tmp_path / "run", n_samples=4, shard_size=2, broken_aug_keys=["n01440765_00001"])
    with tarfile.open(paths[0]) as tar:
        end = max(m.offset_data + m.size for m in tar.getmembers())
    paths[0].write_bytes(paths[0].read_bytes()[: -(-end // 512) * 512])  # only the end-of-archive blocks cut
    errors = []
    assert len(list(iter_pairs(discover([tmp_path / "run"])[0], errors))) == 3
    assert [e["key"] for e in errors] == ["n01440765_00001"]  # undecodable, yet read: no shard warning


def test_unreadable_shard_is_logged_once(tmp_path, caplog):
    from genaug.report.report import ReportOptions, generate_report

    (path,) = make_shards(tmp_path / "run", n_samples=4, shard_size=4)
    with tarfile.open(path) as tar:
        member = tar.getmembers()[-2]  # in the last sample: the contact sheets read up to the break again
    path.write_bytes(path.read_bytes()[: member.offset_data + member.size // 2])
    with caplog.at_level(logging.WARNING, logger="genaug"):
        report = generate_report([tmp_path / "run"], tmp_path / "out",
                                 ReportOptions(batch_size=2, contact_pairs=1, classic=False), features=None)
    assert report["rows"][0]["samples"] == 3 and len(report["pictures"]["contact_sheets"]) == 1
    assert sum("unreadable shard" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("counts", [[1], [1, 1], [3], [1, 5]])
def test_the_throughput_plot_spans_whole_shards(tmp_path, counts):
    """One shard is one point at 0 on an axis from -0.5 to 0.5 (it was +-0.045); n shards span -0.5..n-0.5."""
    from genaug.report import plots

    series = {f"run{i}": [(f"shard-{j:04d}", 10.0 + j) for j in range(n)] for i, n in enumerate(counts)}
    fig = plots.throughput(series, tmp_path / "t.png")
    assert fig.axes[0].get_xlim() == (-0.5, max(counts) - 0.5)
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    assert (tmp_path / "t.png").stat().st_size > 0
