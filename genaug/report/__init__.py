"""Cost-benefit report for genaug runs (the GenCL paper's Table 4) and per-pair quality scores.

Modules: ``scores`` (SSIM per pair, also used by ``genaug build --scores``), ``fid`` (pytorch-fid's
Inception and Fréchet distance, offline), ``classic`` (crop / colour jitter / blur reference
augmentations), ``reader`` (pairs and run records from shard folders), ``report`` (the tables),
``plots`` (PNG pictures). Submodules are imported on use, so importing this package is cheap.
"""
