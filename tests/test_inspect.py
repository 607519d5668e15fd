"""genaug inspect: summary, --verify problem detection, errors.jsonl, scores, --grid sheet, CLI."""

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner
from imagefactory import make_imagenet_folder
from PIL import Image

from genaug.build.preprocess import BadInput, prepare
from genaug.build.sources import open_source, read_item_bytes
from genaug.cli.main import main
from genaug.contact_sheet import real_view, write_contact_sheet
from genaug.inspect import JSON_FIELDS, InspectError, inspect_shards, resolve_shards
from genaug.testing.shardfactory import make_shards, sample_key


def _members(path):
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _write_tar(path, members, update_stats=True):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    if update_stats and path.with_suffix(".json").exists():
        stats = json.loads(path.with_suffix(".json").read_text())
        data = path.read_bytes()
        stats.update(filesize=len(data), md5sum=hashlib.md5(data).hexdigest(),
                     sha256=hashlib.sha256(data).hexdigest())
        path.with_suffix(".json").write_text(json.dumps(stats))
        _update_index(path, stats)


def _update_index(path, stats):
    """Keep the run's index.json entry of a rewritten shard consistent with its new stats."""
    index_path = path.parent / "index.json"
    if index_path.exists():
        index = json.loads(index_path.read_text())
        for entry in index["shardlist"]:
            if entry["url"] == path.name:
                entry.update(filesize=stats["filesize"], md5sum=stats["md5sum"], nsamples=stats["nsamples"])
        index_path.write_text(json.dumps(index))


def _edit_json(path, key, edit):
    members = []
    for name, data in _members(path):
        if name == f"{key}.json":
            meta = json.loads(data)
            edit(meta)
            data = json.dumps(meta).encode()
        members.append((name, data))
    _write_tar(path, members)


def test_summary_of_clean_shards(tmp_path):
    paths = make_shards(tmp_path, n_samples=10, shard_size=4)
    result = inspect_shards([str(tmp_path)], verify=True)
    assert result["problems"] == []
    assert [r["nsamples"] for r in result["shards"]] == [4, 4, 2]
    first = result["shards"][0]
    assert first["shard"] == str(paths[0])
    assert first["fields"] == {"aug.jpg": 4, "cls": 4, "json": 4, "real.jpg": 4}
    assert first["methods"] == {"mask": 4} and first["aug_sizes"] == {"64x64": 4}
    assert first["labels"]["labelled"] == 4 and first["labels"]["classes"] == 4
    assert first["stats"]["nsamples"] == 4
    assert result["totals"]["nsamples"] == 10 and result["totals"]["shards"] == 3


def test_unlabelled_png_shards(tmp_path):
    make_shards(tmp_path, n_samples=3, shard_size=8, labelled=False, aug_format="png")
    (report,) = inspect_shards([str(tmp_path)], verify=True)["shards"]
    assert report["labels"] == {"labelled": 0, "unlabelled": 3, "classes": 0, "min": None, "max": None}
    assert "aug.png" in report["fields"] and "cls" not in report["fields"]


def test_verify_catches_broken_and_missing_aug(tmp_path):
    broken, missing = sample_key(1, True), sample_key(6, True)
    make_shards(tmp_path, n_samples=8, shard_size=4, broken_aug_keys=[broken], missing_aug_keys=[missing])
    problems = inspect_shards([str(tmp_path)], verify=True)["problems"]
    assert len(problems) == 2
    assert broken in problems[0] and "does not decode" in problems[0]
    assert missing in problems[1] and "no aug image" in problems[1]


@pytest.mark.parametrize("edit,expected", [
    (lambda m: m.pop("crop_box"), "lacks field(s) crop_box"),
    (lambda m: m.update(label=3), "cls '1' does not match json label 3"),
    (lambda m: m.update(orig_size=[10, 10]), "orig_size"),
    (lambda m: m.update(crop_box=[0, 0, 500, 500]), "crop_box"),
    (lambda m: m.update(key="other"), "differs from the member key"),
])
def test_verify_catches_json_problems(tmp_path, edit, expected):
    paths = make_shards(tmp_path, n_samples=4, shard_size=4)
    key = sample_key(1, True)
    _edit_json(paths[0], key, edit)
    assert inspect_shards([str(paths[0])], verify=False)["problems"] == []  # only --verify looks
    (problem,) = inspect_shards([str(paths[0])], verify=True)["problems"]
    assert key in problem and expected in problem


def test_verify_catches_count_and_checksum_mismatch(tmp_path):
    paths = make_shards(tmp_path, n_samples=9, shard_size=3)
    members = _members(paths[0])
    _write_tar(paths[0], [m for m in members if not m[0].startswith(sample_key(2, True))])
    stats = json.loads(paths[1].with_suffix(".json").read_text())
    stats["md5sum"] = "0" * 32
    paths[1].with_suffix(".json").write_text(json.dumps(stats))
    with open(paths[2], "ab") as handle:  # extra bytes after the tar: sizes and checksums differ
        handle.write(b"\0" * 512)
    problems = inspect_shards([str(tmp_path)], verify=True)["problems"]
    assert problems[:2] == ["shard-0000.tar: stats nsamples is 3 but the tar has 2",
                            f"shard-0001.tar: stats md5sum is '{'0' * 32}' but the tar has "
                            f"'{hashlib.md5(paths[1].read_bytes()).hexdigest()}'"]
    assert [p.split(" is ")[0] for p in problems[2:]] == [
        "shard-0002.tar: stats filesize", "shard-0002.tar: stats md5sum", "shard-0002.tar: stats sha256"]


def test_verify_catches_truncated_real_missing_stats_and_bad_tar(tmp_path):
    paths = make_shards(tmp_path, n_samples=2, shard_size=2)
    key = sample_key(0, True)
    members = [(n, d[: len(d) * 3 // 4] if n == f"{key}.real.jpg" else d) for n, d in _members(paths[0])]
    _write_tar(paths[0], members)
    paths[0].with_suffix(".json").unlink()
    (tmp_path / "shard-0001.tar").write_bytes(b"not a tar" * 100)
    problems = inspect_shards([str(tmp_path)], verify=True)["problems"]
    assert any(key in p and "real.jpg does not decode" in p for p in problems)
    assert any("no stats file shard-0000.json" in p for p in problems)
    assert any(p.startswith("shard-0001.tar: not a readable tar") for p in problems)


def test_errors_jsonl_and_scores(tmp_path):
    paths = make_shards(tmp_path, n_samples=4, shard_size=2)
    errors = [{"key": "a", "path": "/x/a.jpg", "reason": "image too small: 8x8 px", "shard": 1},
              {"key": "b", "path": "/x/b.jpg", "reason": "zero-byte file", "shard": "shard-0001"},
              {"key": "c", "path": "/x/c.jpg", "reason": "image too small: 9x9 px", "shard": 0}]
    (tmp_path / "errors.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors))
    values = {}
    for i, path in enumerate(paths):
        for j in range(2):
            values[sample_key(2 * i + j, True)] = 0.1 + 0.3 * (2 * i + j) ** 2
            _edit_json(path, sample_key(2 * i + j, True),
                       lambda m, v=values[sample_key(2 * i + j, True)]: m.update(scores={"ssim": v}))
    result = inspect_shards([str(tmp_path)], verify=True)
    assert result["problems"] == []
    assert [r["errors"]["count"] for r in result["shards"]] == [1, 2]
    assert result["shards"][1]["errors"]["reasons"] == {"image too small": 1, "zero-byte file": 1}
    assert result["totals"]["error_reasons"] == {"image too small": 2, "zero-byte file": 1}
    ssim = result["totals"]["scores"]["ssim"]
    assert ssim["n"] == 4
    assert ssim["mean"] == pytest.approx(np.mean(list(values.values())))
    assert ssim["median"] == pytest.approx(np.median(list(values.values())))


def test_resolve_shards(tmp_path):
    paths = make_shards(tmp_path, n_samples=6, shard_size=2)
    assert resolve_shards([str(tmp_path)]) == paths
    assert resolve_shards([str(tmp_path / "shard-{0001..0002}.tar")]) == paths[1:]
    with pytest.raises(InspectError, match="shard-0009.tar"):
        resolve_shards([str(tmp_path / "shard-0009.tar")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InspectError, match="no .tar"):
        resolve_shards([str(tmp_path / "empty")])


def test_grid_size_and_real_crop(tmp_path):
    paths = make_shards(tmp_path / "run", n_samples=6, shard_size=4)
    out = tmp_path / "grid.png"
    info = write_contact_sheet(paths, out, n=6)
    pad, tile, caption = 4, 64, 12
    expected = (4 * (2 * tile + pad) + pad, 2 * (tile + pad + caption) + pad)
    sheet = Image.open(out)
    assert sheet.format == "PNG" and sheet.size == expected and info["pairs"] == 6
    members, key = dict(_members(paths[0])), sample_key(0, True)
    real_bytes, aug_bytes, meta = members[f"{key}.real.jpg"], members[f"{key}.aug.jpg"], json.loads(members[f"{key}.json"])
    view = np.asarray(real_view(real_bytes, meta, (tile, tile))).astype(int)
    cell = np.asarray(sheet.convert("RGB"))[pad:pad + tile].astype(int)
    assert np.abs(cell[:, pad:pad + tile] - view).max() <= 1
    aug = np.asarray(Image.open(io.BytesIO(aug_bytes)).convert("RGB")).astype(int)
    assert np.abs(cell[:, pad + tile:pad + 2 * tile] - aug).max() <= 1
    small = write_contact_sheet(paths, tmp_path / "g2.png", n=3, tile=16, captions=False)
    assert Image.open(tmp_path / "g2.png").size == (3 * (32 + pad) + pad, 16 + 2 * pad) == tuple(small["size"])


def _build_like_pipeline(folder, out):
    """Contract shards made from sources + prepare (aug = the model input) to cross-check meta."""
    members = []
    for item in open_source(str(folder)):
        try:
            prepared = prepare(read_item_bytes(item), 32)
        except BadInput:
            continue
        meta = {f: None for f in JSON_FIELDS} | prepared.meta
        meta.update(key=item.key, source=item.source, label=item.label, wnid=item.wnid)
        buf = io.BytesIO()
        Image.fromarray(prepared.image).save(buf, "PNG")
        members += [(f"{item.key}.aug.png", buf.getvalue()), (f"{item.key}.cls", str(item.label).encode()),
                    (f"{item.key}.json", json.dumps(meta).encode()), (f"{item.key}.real.jpg", prepared.real_bytes)]
    out.mkdir()
    _write_tar(out / "shard-0000.tar", sorted(members))
    return out / "shard-0000.tar"


def test_preprocess_meta_passes_verify_and_grid_shows_model_input(tmp_path):
    made = make_imagenet_folder(tmp_path / "in", n_classes=2, per_class=1, broken=False)
    shard = _build_like_pipeline(made["train"], tmp_path / "out")
    result = inspect_shards([str(shard)], verify=True)
    assert result["problems"] == ["shard-0000.tar: no stats file shard-0000.json (the shard is not marked done)"]
    assert result["shards"][0]["nsamples"] == len(made["good"])
    info = write_contact_sheet([shard], tmp_path / "g.png", n=64, columns=1, captions=False)
    sheet = np.asarray(Image.open(tmp_path / "g.png").convert("RGB")).astype(int)
    for row in range(info["pairs"]):  # real view (from real.jpg + crop_box) == the model input
        cell = sheet[4 + row * 36:4 + row * 36 + 32, 4:68]
        assert np.abs(cell[:, :32] - cell[:, 32:]).mean() < 4.0


def test_cli_inspect(tmp_path):
    make_shards(tmp_path / "run", n_samples=5, shard_size=4, broken_aug_keys=[sample_key(4, True)])
    runner = CliRunner()
    ok = runner.invoke(main, ["inspect", str(tmp_path / "run" / "shard-0000.tar"), "--verify"])
    assert ok.exit_code == 0, ok.output
    assert "shard-0000.tar: 4 samples" in ok.output and "verify: OK" in ok.output
    bad = runner.invoke(main, ["inspect", str(tmp_path / "run"), "--verify", "--json",
                               "--grid", str(tmp_path / "g.png"), "--n", "2"])
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["totals"]["nsamples"] == 5 and len(report["problems"]) == 1
    assert report["grid"]["pairs"] == 2 and (tmp_path / "g.png").is_file()
    missing = runner.invoke(main, ["inspect", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "nothing" in missing.output


def _interrupt(run, total_shards, shard_size):
    """What a Ctrl-C leaves: manifest.json still "running", the last shard(s) never written."""
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(status="running", config={"limit": total_shards * shard_size, "shard_size": shard_size})
    (run / "manifest.json").write_text(json.dumps(manifest))


def test_verify_fails_on_an_interrupted_build(tmp_path):
    run = tmp_path / "run"
    make_shards(run, n_samples=4, shard_size=2)
    _interrupt(run, total_shards=3, shard_size=2)
    result = inspect_shards([str(run)], verify=True)
    (problem,) = result["problems"]
    assert "build not finished: 2 of at most 3 shard(s) done" in problem
    assert "rerun the same genaug build command to resume" in problem
    assert result["builds"][0]["status"] == "running" and not result["builds"][0]["finished"]
    runner = CliRunner()
    cli = runner.invoke(main, ["inspect", str(run), "--verify"])
    assert cli.exit_code == 1 and "build not finished" in cli.output and "verify: OK" not in cli.output
    summary = runner.invoke(main, ["inspect", str(run)])  # without --verify: said, but not a failure
    assert summary.exit_code == 0 and f"run folder {run}: build not finished" in summary.output
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(status="complete", counts={"shards": 2})
    (run / "manifest.json").write_text(json.dumps(manifest))
    done = runner.invoke(main, ["inspect", str(run), "--verify"])
    assert done.exit_code == 0 and "complete (2 shard(s))" in done.output and "verify: OK" in done.output


def test_verify_fails_on_a_build_interrupted_before_its_first_shard(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"status": "running", "config": {"limit": 6, "shard_size": 2}}))
    (problem,) = inspect_shards([str(run)], verify=True)["problems"]
    assert problem.startswith(f"{run}: build not finished: 0 of at most 3 shard(s) done")
    assert problem.endswith("rerun the same genaug build command to resume")
    runner = CliRunner()
    cli = runner.invoke(main, ["inspect", str(run), "--verify"])
    assert cli.exit_code == 1 and isinstance(cli.exception, SystemExit), cli.output
    assert "build not finished: 0 of at most 3" in cli.output and "no .tar shards" not in cli.output
    summary = runner.invoke(main, ["inspect", str(run)])  # without --verify: said, but not a failure
    assert summary.exit_code == 0 and "total: 0 shards" in summary.output
    assert f"run folder {run}: build not finished" in summary.output
    (run / "manifest.json").write_text(json.dumps({"status": "complete"}))  # finished, yet no shards
    assert runner.invoke(main, ["inspect", str(run), "--verify"]).exit_code == 2


@pytest.mark.parametrize("name, message", [
    ("afile/x.png", "is not a folder"), ("nodir/sub/g.png", "does not exist"), ("g.gif", "unknown image extension"),
    ("g", "unknown image extension")])
def test_bad_grid_path_is_refused_before_any_work(tmp_path, monkeypatch, name, message):
    make_shards(tmp_path / "run", n_samples=2, shard_size=2)
    (tmp_path / "afile").write_text("a file, not a folder")
    monkeypatch.setattr("genaug.cli.inspect.inspect_shards", lambda *a, **k: pytest.fail("inspect ran before --grid was checked"))
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "run"), "--grid", str(tmp_path / name)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "--grid" in result.output and message in result.output
    assert not (tmp_path / "nodir").exists()


@pytest.mark.parametrize("name, magic", [("g.jpg", b"\xff\xd8\xff"), ("g.JPEG", b"\xff\xd8\xff"),
                                         ("g.webp", b"RIFF"), ("g.png", b"\x89PNG")])
def test_grid_is_written_in_the_format_of_its_extension(tmp_path, name, magic):
    make_shards(tmp_path / "run", n_samples=2, shard_size=2)
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "run"), "--grid", str(tmp_path / name)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / name).read_bytes().startswith(magic)
    with Image.open(tmp_path / name) as sheet:
        assert sheet.size[0] > 64


def _input_shard(path, n=3):
    """An imagenet1k-style input shard (jpg + cls, no genaug json/aug members)."""
    members = []
    for i in range(n):
        image = io.BytesIO()
        Image.new("RGB", (32, 24), (10 * i, 50, 90)).save(image, format="JPEG")
        members += [(f"n0144076{i}_{i:05d}.jpg", image.getvalue()), (f"n0144076{i}_{i:05d}.cls", str(7 * i).encode())]
    _write_tar(path, members, update_stats=False)


def test_input_shards_count_cls_labels_and_are_not_genaug(tmp_path):
    _input_shard(tmp_path / "imagenet1k-train-0000.tar")
    summary = inspect_shards([str(tmp_path)])
    (report,) = summary["shards"]
    assert report["labels"] == {"labelled": 3, "unlabelled": 0, "classes": 3, "min": 0, "max": 14}
    assert report["genaug"] is False and summary["problems"] == []  # no per-sample "no json" noise
    (problem,) = inspect_shards([str(tmp_path)], verify=True)["problems"]
    assert "not genaug shards (no json/aug members" in problem and "cls, jpg" in problem
    runner = CliRunner()
    text = runner.invoke(main, ["inspect", str(tmp_path)])
    assert text.exit_code == 0 and "labels: 3 labelled, 3 class(es), 0..14" in text.output
    assert "not genaug shards" in text.output
    verify = runner.invoke(main, ["inspect", str(tmp_path), "--verify"])
    assert verify.exit_code == 1 and verify.output.count("not genaug shards") == 2


def test_grid_skips_the_unreadable_part_of_a_truncated_shard(tmp_path):
    paths = make_shards(tmp_path / "run", n_samples=4, shard_size=2)
    with tarfile.open(paths[1]) as tar:
        member = tar.getmembers()[-2]
    paths[1].write_bytes(paths[1].read_bytes()[: member.offset_data + member.size // 2])
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "run"), "--grid", str(tmp_path / "g.png")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "shard-0001.tar: not a readable tar" in result.output and (tmp_path / "g.png").is_file()


@pytest.mark.parametrize("tile", [16, 24, 64])
def test_grid_columns_are_labelled_and_long_captions_wrap_not_cut(tmp_path, tile):
    from PIL import ImageDraw, ImageFont

    from genaug.contact_sheet import CAPTION_H, LABEL_H, _wrap

    paths = make_shards(tmp_path / "run", n_samples=3, shard_size=3)
    plain = write_contact_sheet(paths, tmp_path / "plain.png", n=3, tile=tile, captions=False)
    labelled = write_contact_sheet(paths, tmp_path / "lab.png", n=3, tile=tile, captions=False, labels=True)
    assert labelled["size"][1] == plain["size"][1] + LABEL_H
    band = np.asarray(Image.open(tmp_path / "lab.png").convert("L"))[:LABEL_H + 2]
    assert (band > 150).any()  # the labels are drawn (light text on the dark background)
    captioned = write_contact_sheet(paths, tmp_path / "cap.png", n=3, tile=tile, labels=True)
    draw, font = ImageDraw.Draw(Image.new("RGB", (1, 1))), ImageFont.load_default()
    key = sample_key(0, True)
    lines = _wrap(draw, font, key, 2 * tile)
    assert "".join(lines) == key and all(draw.textlength(line, font=font) <= 2 * tile for line in lines)
    assert captioned["size"][1] == plain["size"][1] + LABEL_H + CAPTION_H * max(
        len(_wrap(draw, font, sample_key(i, True), 2 * tile)) for i in range(3))


def test_cli_grid_draws_the_column_labels(tmp_path):
    make_shards(tmp_path / "run", n_samples=2, shard_size=2)
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "run"), "--grid", str(tmp_path / "g.png"),
                                       "--n", "2", "--no-captions", "--tile", "16"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "g.png").size == (2 * (32 + 4) + 4, 16 + 2 * 4 + 12)


def test_one_renderer_draws_titled_sheets_for_the_report(tmp_path):
    from PIL import ImageDraw, ImageFont

    from genaug.contact_sheet import PAD, TITLE_H, _wrap, write_sheet

    rng = np.random.default_rng(0)
    cells = [(f"best k{i} SSIM 0.{i}00", Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)),
              Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))) for i in range(3)]
    plain = write_sheet(cells, tmp_path / "plain.png", columns=2)
    title = "a rather long row label (preset) [run]: real | aug, by SSIM"
    titled = write_sheet(cells, tmp_path / "titled.png", columns=2, title=title)
    draw, font = ImageDraw.Draw(Image.new("RGB", (1, 1))), ImageFont.load_default()
    lines = _wrap(draw, font, title, plain["size"][0] - 2 * PAD)
    assert len(lines) > 1 and "".join(lines) == title  # wrapped, never cut
    assert titled["size"] == [plain["size"][0], plain["size"][1] + TITLE_H * len(lines)]
    band = np.asarray(Image.open(tmp_path / "titled.png").convert("L"))[:TITLE_H * len(lines)]
    assert (band > 150).any()
    with pytest.raises(ValueError, match="no pairs to draw for 'empty'"):
        write_sheet([], tmp_path / "none.png", title="empty")
