"""benchmarks/bench_device.py in its CPU mode (tiny presets): every part runs and is written (figures
only; no timing is asserted), into a temp folder, never into the committed benchmarks/RESULTS.md."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_mode_measures_every_part_and_appends_one_row(tmp_path):
    committed = (ROOT / "benchmarks" / "RESULTS.md").read_bytes()
    results, out = tmp_path / "RESULTS.md", tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "benchmarks/bench_device.py", "--cpu", "--chunks", "1,2", "--images", "6",
                           "--results", str(results), "--json-out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(out.read_text())
    stages = {(r["method"], r["stage"], r["chunk"]) for r in facts["stages"]}
    names = ("vqgan_encode", "transformer_pass", "decode_12_steps", "vqgan_decode")
    assert stages == {("mask", s, c) for s in names for c in (1, 2)} | {
        ("noise", s, c) for s in ("swav_resnet50", "generator") for c in (1, 2)}
    assert all(r["gflop_per_image"] > 0 and r["ms_per_image"] > 0 and r["mfu"] is None for r in facts["stages"])
    for method in ("mask", "noise"):
        e2e = facts["end_to_end"][method]
        assert e2e["inputs"] == 6 == e2e["samples"] and e2e["e2e_over_model_only"] > 0
        assert facts["agreement"][f"edit_{method}"]["auto"]["max_abs"] == 0  # auto is exact fp32 on the CPU
    assert 0.5 < facts["agreement"]["tokenizer"]["bf16"] <= 1 and facts["gpu_tests"]["run"] is False
    rows = [line for line in results.read_text().splitlines() if line.startswith("| 20")]
    assert len(rows) == 1 and "(CPU)" in rows[0] and "CPU mode: no GPU figure" in rows[0]
    assert "NOT a GPU figure" in done.stdout and "end-to-end ÷ model-only" in done.stdout
    assert (ROOT / "benchmarks" / "RESULTS.md").read_bytes() == committed


def _env():
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "benchmarks")}


def test_peak_table_matches_device_names():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _device_stages import peak_for
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert peak_for("NVIDIA H100 80GB HBM3")["bf16"] == 989.0
    assert peak_for("NVIDIA H100 PCIe")["bf16"] == 756.0
    assert peak_for("NVIDIA H200")["tf32"] == 494.7
    assert peak_for("NVIDIA A100-SXM4-80GB")["bf16"] == 312.0
    assert peak_for("NVIDIA GeForce RTX 4090") and peak_for("NVIDIA L40S") and peak_for("NVIDIA GeForce RTX 3090")
    assert peak_for("Some other GPU") is None


def test_official_comparison_says_what_it_needs_without_a_checkout():
    done = subprocess.run([sys.executable, "benchmarks/bench_official.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert done.returncode == 0 and "no --official-ic-gan checkout given" in done.stdout
