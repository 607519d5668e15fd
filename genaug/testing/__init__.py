"""Helpers shared by the tests and the benchmarks (neither executes the other's files):

* `genaug.testing.editors`: a cheap, deterministic test-only method and presets (`editors.register()`);
* `genaug.testing.shardfactory`: tiny genaug shards written exactly in the format of docs/contracts.md;
* `genaug.testing.loaderbench`: the plain webdataset pipeline the loader benchmark compares against.
"""
