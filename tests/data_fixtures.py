"""The tests' converted datasets: `bench.clips`, the writer the pipeline benchmark uses too."""

from bench.clips import NAME, make_clip, shard_paths, write_dataset

__all__ = ["NAME", "make_clip", "shard_paths", "write_dataset"]
