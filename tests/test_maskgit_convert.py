"""Checkpoint reading and conversion: the full ImageNet-256 tree, the msgpack reader, strictness."""

import gzip
import json
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch

from genaug.models.maskgit import MaskGIT, MaskGITConfig, flax_msgpack
from genaug.models.maskgit.convert import (
    ConversionError,
    convert_tree,
    official_shapes,
    tokenizer_rules,
    transformer_rules,
    unwrap_params,
)

FIXTURES = Path(__file__).parent / "fixtures" / "maskgit"


def _check_tree_coverage(official: dict[str, list[int]], rules, model_shapes, num_heads) -> set[str]:
    covered: dict[str, tuple] = {}
    for rule in rules:
        shapes = official_shapes(rule.kind, tuple(model_shapes[rule.torch_name]), num_heads)
        for path, shape in zip(rule.official, shapes, strict=True):
            key = f"params/{path}"
            assert key not in covered, f"{key} used twice"
            covered[key] = shape
    assert sorted(covered) == sorted(official), (
        f"missing: {sorted(set(official) - set(covered))[:5]}, extra: {sorted(set(covered) - set(official))[:5]}"
    )
    for key, shape in covered.items():
        assert tuple(official[key]) == shape, key
    return {r.torch_name for r in rules}


def test_full_imagenet256_config_covers_official_tree_one_to_one():
    tree = json.loads((FIXTURES / "official_tree_imagenet256.json").read_text())
    cfg = MaskGITConfig()
    with torch.device("meta"):
        model = MaskGIT(cfg)
    shapes = model.expected_shapes()
    names = _check_tree_coverage(tree["tokenizer"], tokenizer_rules(cfg), shapes, cfg.num_heads)
    names |= _check_tree_coverage(tree["transformer"], transformer_rules(cfg), shapes, cfg.num_heads)
    assert names == set(shapes), sorted(set(shapes) ^ names)[:5]

    counts = model.parameter_counts()
    official = {part: sum(int(np.prod(s)) for s in t.values()) for part, t in tree.items()}
    assert counts["tokenizer"] == official["tokenizer"] == 54_515_587
    assert counts["transformer"] == official["transformer"] == 172_457_193
    assert round(counts["total"] / 1e6) == 227


def _fixture_tree(name: str) -> dict:
    return flax_msgpack.loads(gzip.decompress((FIXTURES / f"{name}.msgpack.gz").read_bytes()))


def test_converter_names_missing_and_leftover_keys():
    cfg = MaskGITConfig(**json.loads((FIXTURES / "config.json").read_text())["config"])
    shapes = MaskGIT(cfg).expected_shapes()
    flat = flax_msgpack.flatten(unwrap_params(_fixture_tree("transformer"), "t"))
    converted = convert_tree(flat, transformer_rules(cfg), shapes, "t")
    assert set(converted) == {k for k in shapes if k.startswith("transformer.")}

    broken = dict(flat)
    del broken["TransformerLayer_1/Mlp_0/layer_output/bias"]
    with pytest.raises(ConversionError, match="TransformerLayer_1/Mlp_0/layer_output/bias"):
        convert_tree(broken, transformer_rules(cfg), shapes, "t")
    extra = dict(flat, **{"TransformerLayer_2/Mlp_0/layer_output/bias": np.zeros(3, np.float32)})
    with pytest.raises(ConversionError, match="left unused.*TransformerLayer_2"):
        convert_tree(extra, transformer_rules(cfg), shapes, "t")
    with pytest.raises(ConversionError, match="batch_stats"):
        unwrap_params({"params": {}, "batch_stats": {}}, "tokenizer")
    # the 2-layer fixture tree is not the 24-layer default model
    with pytest.raises(ConversionError, match="missing"):
        convert_tree(flat, transformer_rules(MaskGITConfig()), shapes, "t")


def _ext_array(arr: np.ndarray, dtype_name: str | None = None) -> msgpack.ExtType:
    payload = msgpack.packb((arr.shape, dtype_name or arr.dtype.name, arr.tobytes("C")), use_bin_type=True)
    return msgpack.ExtType(flax_msgpack.EXT_NDARRAY, payload)


def test_msgpack_reader_handles_bf16_scalars_complex_and_chunks():
    rng = np.random.default_rng(0)
    big = rng.standard_normal((3, 4)).astype(np.float32)
    bf16_bits = np.array([0x3F80, 0xC000, 0x3E20], np.uint16)  # 1.0, -2.0, 0.15625 in bfloat16
    tree = {
        "a": {"kernel": _ext_array(big)},
        "bf": _ext_array(bf16_bits, "bfloat16"),
        "step": msgpack.ExtType(flax_msgpack.EXT_NPSCALAR, msgpack.packb(((), "int32", np.int32(7).tobytes()))),
        "z": msgpack.ExtType(flax_msgpack.EXT_COMPLEX, msgpack.packb((1.5, -2.0))),
        "chunked": {"__msgpack_chunked_array__": True, "shape": {"0": 2, "1": 3},
                    "chunks": {"0": _ext_array(np.arange(4, dtype=np.float32)),
                               "1": _ext_array(np.arange(4, 6, dtype=np.float32))}},
    }
    out = flax_msgpack.loads(msgpack.packb(tree, use_bin_type=True))
    np.testing.assert_array_equal(out["a"]["kernel"], big)
    np.testing.assert_array_equal(out["bf"], np.array([1.0, -2.0, 0.15625], np.float32))
    assert out["step"] == 7 and out["z"] == complex(1.5, -2.0)
    np.testing.assert_array_equal(out["chunked"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert flax_msgpack.flatten(out)["a/kernel"] is out["a"]["kernel"]


def test_msgpack_reader_rejects_garbage(tmp_path):
    with pytest.raises(flax_msgpack.CheckpointFormatError):
        flax_msgpack.loads(msgpack.packb([1, 2, 3]))
    with pytest.raises(flax_msgpack.CheckpointFormatError, match="extension type 9"):
        flax_msgpack.loads(msgpack.packb({"x": msgpack.ExtType(9, b"")}))
    bad = tmp_path / "bad_checkpoint"
    bad.write_bytes(b"\xc1not msgpack")
    with pytest.raises(flax_msgpack.CheckpointFormatError, match="bad_checkpoint"):
        flax_msgpack.load(bad)
    with pytest.raises(FileNotFoundError, match="nope"):
        flax_msgpack.load(tmp_path / "nope")


def test_save_torch_round_trip_is_strict(tmp_path):
    torch.manual_seed(0)
    cfg = MaskGITConfig.tiny()
    model = MaskGIT(cfg).eval()
    path = tmp_path / "maskgit.pt"
    model.save_torch(path)
    loaded = MaskGIT.from_torch(path, cfg)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert MaskGIT.from_torch(path).config == cfg  # config read from the file
    with pytest.raises(ConversionError, match="not the requested"):
        MaskGIT.from_torch(path, MaskGITConfig())
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ConversionError, match="genaug convert"):
        MaskGIT.from_torch(tmp_path / "other.pt")
