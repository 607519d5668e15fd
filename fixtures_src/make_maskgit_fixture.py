"""Make the MaskGIT reference fixture by running the OFFICIAL Flax code (google-research/maskgit).

    PYTHONPATH=/tmp/official/maskgit /work/refvenv/bin/python fixtures_src/make_maskgit_fixture.py \
        --out tests/fixtures/maskgit

Needs jax/flax/ml_collections (the throwaway reference venv), not genaug. Contains no official code:
it imports `maskgit.*` from PYTHONPATH and only builds configs, random weights and inputs around it.

Writes (all small):
  config.json                    the tiny fixture config (genaug MaskGITConfig field names) + decode settings
  tokenizer.msgpack.gz           official VQVAE variables {"params": ...}, flax msgpack (gzip-wrapped)
  transformer.msgpack.gz         official Transformer variables, flax msgpack (gzip-wrapped)
  reference.npz                  images, encoder features, token ids, reconstructions, logits,
                                 two official decode runs with the Gumbel noise they drew,
                                 the official float32 cosine schedule table
  official_tree_imagenet256.json full ImageNet-256 parameter trees (path -> shape) via jax.eval_shape
Weights are random but rounded to bfloat16-representable float32 values so the files gzip well.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from flax.core import unfreeze
from flax.traverse_util import flatten_dict, unflatten_dict
from maskgit.configs import maskgit_class_cond_config
from maskgit.libml import mask_schedule, parallel_decode
from maskgit.nets import maskgit_transformer, vqgan_tokenizer

FIXTURE_CONFIG = dict(  # genaug MaskGITConfig field names; channels change 32->64->32 both ways;
    # 2 res-blocks per level (as the ImageNet model) so the numbering of several blocks per level is checked
    image_size=32, filters=32, num_res_blocks=2, channel_multipliers=[1, 2, 1], embedding_dim=16,
    codebook_size=32, num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64, num_classes=10,
)
BATCH = 2
DECODES = (  # name, num_iter, start_iter, choice_temperature, rng seed, masking
    ("gen", 12, 0, 4.5, 7, "all"),
    ("edit", 10, 2, 4.5, 11, "interior"),
)
SCHEDULE_MAX_ITER = 64


def official_config(fc: dict):
    cf = maskgit_class_cond_config.get_config()
    cf.image_size = fc["image_size"]
    cf.num_class = fc["num_classes"]
    cf.vqvae.filters = fc["filters"]
    cf.vqvae.num_res_blocks = fc["num_res_blocks"]
    cf.vqvae.channel_multipliers = list(fc["channel_multipliers"])
    cf.vqvae.embedding_dim = fc["embedding_dim"]
    cf.vqvae.codebook_size = fc["codebook_size"]
    cf.transformer.num_layers = fc["num_layers"]
    cf.transformer.num_embeds = fc["hidden_size"]
    cf.transformer.num_heads = fc["num_heads"]
    cf.transformer.intermediate_size = fc["intermediate_size"]
    return cf


def build_models(cf):
    """The two official modules, constructed as the official inference.py does."""
    tokenizer = vqgan_tokenizer.VQVAE(config=cf, dtype=jnp.float32, train=False)
    latent = cf.image_size // 2 ** (len(cf.vqvae.channel_multipliers) - 1)
    transformer = maskgit_transformer.Transformer(
        vocab_size=cf.vqvae.codebook_size + cf.num_class + 1,
        hidden_size=cf.transformer.num_embeds,
        num_hidden_layers=cf.transformer.num_layers,
        num_attention_heads=cf.transformer.num_heads,
        intermediate_size=cf.transformer.intermediate_size,
        hidden_dropout_prob=cf.transformer.dropout_rate,
        attention_probs_dropout_prob=cf.transformer.dropout_rate,
        max_position_embeddings=latent**2 + 1,
    )
    return tokenizer, transformer, latent


def _encode_then_decode(module, images):  # creates encoder, quantizer and decoder params
    quantized, _ = module.encode({"image": images})
    return module.decode(quantized)


def init_variables(cf, key, batch=1):
    tokenizer, transformer, latent = build_models(cf)
    k1, k2 = jax.random.split(key)
    images = jnp.zeros((batch, cf.image_size, cf.image_size, 3), jnp.float32)
    tok_vars = tokenizer.init(k1, images, method=_encode_then_decode)
    tr_vars = transformer.init(k2, jnp.zeros((batch, latent**2 + 1), jnp.int32))
    return tok_vars, tr_vars


def _bf16_round(x: np.ndarray) -> np.ndarray:
    bits = np.asarray(x, np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    return bits.view(np.float32)


def randomize(variables, rng: np.random.Generator, embed_std: float):
    """Non-trivial values everywhere (norm scales/biases, biases), then bf16 rounding."""
    flat = flatten_dict(unfreeze(variables))
    out = {}
    for path, value in flat.items():
        value = np.asarray(value, np.float32)
        name = path[-1]
        if name == "scale":
            value = 1.0 + 0.2 * rng.standard_normal(value.shape)
        elif name == "bias":
            value = 0.2 * rng.standard_normal(value.shape)
        elif name == "embedding":
            value = embed_std * rng.standard_normal(value.shape)
        elif name == "kernel":
            fan_in = int(np.prod(value.shape[:-1]))
            value = rng.standard_normal(value.shape) / np.sqrt(fan_in)
        out[path] = _bf16_round(value)
    return unflatten_dict(out)


def record_gumbel_draws():
    """Wrap jax.random.gumbel (public name and the one categorical uses) to record its outputs.
    Only meaningful under jax.disable_jit(), where the decode loop runs eagerly."""
    import jax._src.random as jrandom

    draws = []
    original = jrandom.gumbel

    def recording(key, shape=(), dtype=jnp.float32):
        value = original(key, shape, dtype)
        draws.append(np.asarray(value))
        return value

    jrandom.gumbel = recording
    jax.random.gumbel = recording

    def restore():
        jrandom.gumbel = original
        jax.random.gumbel = original

    return draws, restore


def decode_inputs(ids: np.ndarray, labels: np.ndarray, cf, latent: int, masking: str) -> np.ndarray:
    grid = ids.reshape(ids.shape[0], latent, latent).copy()
    if masking == "all":
        grid[:] = -1
    else:  # keep the outer ring of the token grid, mask the interior (the GenCL edit)
        grid[:, 1:-1, 1:-1] = -1
    cls = labels[:, None] + cf.vqvae.codebook_size
    return np.concatenate([cls, grid.reshape(ids.shape[0], -1)], axis=1).astype(np.int32)


def run_decodes(cf, transformer, tr_vars, seq0: dict, out: dict, decodes=DECODES) -> None:
    def tokens_to_logits(seq):  # as the official inference.py: logits restricted to the codebook
        return transformer.apply(tr_vars, seq, deterministic=True)[..., : cf.vqvae.codebook_size]

    for name, num_iter, start_iter, temp, seed, _masking in decodes:
        inputs = seq0[name]
        kwargs = dict(mask_token_id=-1, num_iter=num_iter, start_iter=start_iter, choice_temperature=temp)
        seqs = np.asarray(parallel_decode.decode(jnp.asarray(inputs), jax.random.PRNGKey(seed),
                                                 tokens_to_logits, **kwargs))
        draws, restore = record_gumbel_draws()
        try:
            with jax.disable_jit():
                eager = np.asarray(parallel_decode.decode(jnp.asarray(inputs), jax.random.PRNGKey(seed),
                                                          tokens_to_logits, **kwargs))
        finally:
            restore()
        steps = num_iter - start_iter
        assert len(draws) == 2 * steps, f"expected 2 Gumbel draws per step, got {len(draws)}"
        if not np.array_equal(seqs, eager):
            print(f"warning: {name}: jitted and eager official decodes differ; keeping the eager one")
        out[f"{name}_input"] = inputs
        out[f"{name}_seqs"] = eager
        out[f"{name}_gumbel_sample"] = np.stack(draws[0::2]).astype(np.float32)  # (steps, B, L, K)
        out[f"{name}_gumbel_choice"] = np.stack(draws[1::2]).astype(np.float32)  # (steps, B, L)
        unknown = (eager == -1).sum(-1)
        print(f"{name}: masked count per step (sample 0): {unknown[0].tolist()}, final ids "
              f"{np.unique(eager[:, -1, 1:]).size} distinct")


def schedule_table() -> np.ndarray:
    """mask_ratio[num_iter - 1, step] as the official decode computes it (int32 step, float32)."""
    table = np.full((SCHEDULE_MAX_ITER, SCHEDULE_MAX_ITER), np.nan, np.float32)

    @jax.jit
    def ratios(steps, num_iter):
        ratio = 1.0 * (steps + 1) / num_iter
        return mask_schedule.schedule(ratio, 256, "cosine")

    for n in range(1, SCHEDULE_MAX_ITER + 1):
        steps = jnp.arange(n, dtype=jnp.int32)
        table[n - 1, :n] = np.asarray(ratios(steps, n))
    return table


def tree_listing(variables) -> dict:
    flat = flatten_dict(unfreeze(variables))
    return {"/".join(k): list(v.shape) for k, v in sorted(flat.items())}


def imagenet256_tree(path: Path) -> None:
    cf = maskgit_class_cond_config.get_config()
    key = jax.random.PRNGKey(0)
    tok_vars, tr_vars = jax.eval_shape(lambda: init_variables(cf, key))
    listing = {"tokenizer": tree_listing(tok_vars), "transformer": tree_listing(tr_vars)}
    for part, tree in listing.items():
        print(f"ImageNet-256 {part}: {sum(int(np.prod(s)) for s in tree.values()):,} parameters")
    path.write_text(json.dumps(listing, indent=1) + "\n")


def write_msgpack_gz(path: Path, variables) -> None:
    data = serialization.to_bytes(variables)
    assert serialization.msgpack_restore(data) is not None
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


def full_size_check(out: Path, seed: int) -> None:
    """Optional, large (~900 MB, not committed): the full ImageNet-256 architecture with random
    weights, one image through the tokenizer and a 12-step ring decode with recorded noise.
    tests/test_maskgit_official.py uses it when $GENAUG_MASKGIT_FULL_FIXTURE names `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cf = maskgit_class_cond_config.get_config()
    tokenizer, transformer, latent = build_models(cf)
    tok_vars, tr_vars = init_variables(cf, jax.random.PRNGKey(seed))
    tok_vars, tr_vars = randomize(tok_vars, rng, 0.5), randomize(tr_vars, rng, 0.5)
    (out / "tokenizer_checkpoint").write_bytes(serialization.to_bytes(tok_vars))
    (out / "transformer_checkpoint").write_bytes(serialization.to_bytes(tr_vars))
    images = rng.random((1, cf.image_size, cf.image_size, 3)).astype(np.float32)
    ids = tokenizer.apply(tok_vars, {"image": images}, method=tokenizer.encode_to_indices)
    ref = dict(images_nhwc=images, ids=np.asarray(ids),
               features_nhwc=np.asarray(tokenizer.apply(tok_vars, images, method=lambda m, x: m.encoder(x))),
               recon_nhwc=np.asarray(tokenizer.apply(tok_vars, ids, method=tokenizer.decode_from_indices)))
    labels = rng.integers(0, cf.num_class, 1)
    seq = {"edit": decode_inputs(np.asarray(ids).reshape(1, -1), labels, cf, latent, "interior")}
    ref["logits_seq"] = seq["edit"]
    ref["logits"] = np.asarray(transformer.apply(tr_vars, jnp.asarray(seq["edit"]), deterministic=True))
    run_decodes(cf, transformer, tr_vars, seq, ref, decodes=(("edit", 12, 0, 4.5, seed + 3, "interior"),))
    np.savez(out / "reference.npz", **ref)
    print(f"full-size check data written to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder, e.g. tests/fixtures/maskgit")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    parser.add_argument("--full-size-out", type=Path, default=None,
                        help="also write the large full-size check data here (not for the repo)")
    args = parser.parse_args()
    if args.out is None and args.full_size_out is None:
        parser.error("give --out (the small committed fixture) and/or --full-size-out")
    if args.full_size_out is not None:
        full_size_check(args.full_size_out, args.seed)
    if args.out is not None:
        small_fixture(args.out, args.seed)


def small_fixture(out_dir: Path, seed: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cf = official_config(FIXTURE_CONFIG)
    tokenizer, transformer, latent = build_models(cf)
    tok_vars, tr_vars = init_variables(cf, jax.random.PRNGKey(seed))
    tok_vars = randomize(tok_vars, rng, embed_std=0.5)
    tr_vars = randomize(tr_vars, rng, embed_std=0.5)

    size = cf.image_size
    images = rng.random((BATCH, size, size, 3)).astype(np.float32)
    features = tokenizer.apply(tok_vars, images, method=lambda m, x: m.encoder(x))
    ids = tokenizer.apply(tok_vars, {"image": images}, method=tokenizer.encode_to_indices)
    recon = tokenizer.apply(tok_vars, ids, method=tokenizer.decode_from_indices)
    labels = rng.integers(0, cf.num_class, BATCH)
    flat_ids = np.asarray(ids).reshape(BATCH, -1)
    seq0 = {name: decode_inputs(flat_ids, labels, cf, latent, masking) for name, *_, masking in DECODES}
    logits_seq = seq0["edit"].copy()
    logits_seq[0, 5] = -1  # also a masked ring token
    logits = transformer.apply(tr_vars, jnp.asarray(logits_seq), deterministic=True)
    print(f"token ids: {np.unique(flat_ids).size} distinct of {cf.vqvae.codebook_size}")

    out = dict(images_nhwc=images, features_nhwc=np.asarray(features), ids=np.asarray(ids),
               recon_nhwc=np.asarray(recon), labels=labels, logits_seq=logits_seq,
               logits=np.asarray(logits), schedule=schedule_table())
    run_decodes(cf, transformer, tr_vars, seq0, out)
    np.savez_compressed(out_dir / "reference.npz", **out)
    write_msgpack_gz(out_dir / "tokenizer.msgpack.gz", tok_vars)
    write_msgpack_gz(out_dir / "transformer.msgpack.gz", tr_vars)
    settings = {name: dict(num_iter=n, start_iter=s, choice_temperature=t, seed=dseed, masking=mk)
                for name, n, s, t, dseed, mk in DECODES}
    (out_dir / "config.json").write_text(json.dumps(
        {"config": FIXTURE_CONFIG, "batch": BATCH, "decodes": settings, "seed": seed,
         "jax": jax.__version__}, indent=1) + "\n")
    imagenet256_tree(out_dir / "official_tree_imagenet256.json")
    for f in sorted(out_dir.iterdir()):
        print(f"{f.name}: {f.stat().st_size / 1e3:.1f} kB")


if __name__ == "__main__":
    main()
