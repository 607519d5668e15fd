"""`genaug build`, cut by role: config (settings), sources (inputs), preprocess and workers (decode/encode),
batches (the editor call), shard (one shard's life), runfiles (resume and run files), pipeline (orchestration).
See ARCHITECTURE.md."""
