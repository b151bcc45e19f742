"""`python -m bench.subjects`: the corpus size it synthesizes, its per-count subject views
(the first N training subjects, every held-out shard) and its report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import subjects
from bench.clips import make_clip
from ienet_jax.data import features, source, tfrecord


def _write(directory, spec, split, shard_subjects):
    """One shard per entry of `shard_subjects` (a subject id, or a list: one per clip)."""
    n = len(shard_subjects)
    k = 0
    for i, who in enumerate(shard_subjects):
        whos = who if isinstance(who, list) else [who, who]
        examples = []
        for w in whos:
            ex = make_clip(spec, k, split)
            ex["subject"] = w
            examples.append(features.serialize_example(spec, ex))
            k += 1
        tfrecord.write_records(directory / f"synth-{split}.tfrecord-{i:05d}-of-{n:05d}",
                               examples)


@pytest.fixture
def clips(tmp_path):
    spec = features.ClipSpec(clip_length=8, height=8, width=8, nir=True)
    directory = tmp_path / "clips"
    directory.mkdir()
    spec.tfds_features().save_config(str(directory))
    (directory / "metadata.json").write_text("{}")
    _write(directory, spec, "train", ["a", "a", "b", "c", "d"])  # a has two videos
    _write(directory, spec, "test", ["x", "y"])
    return directory, spec


def test_subjects_needed_fills_the_train_split():
    assert subjects.subjects_needed(96, "0.6,0.1,0.3") == 160
    assert subjects.subjects_needed(2, "0.5,0.25,0.25") == 4
    assert subjects.subjects_needed(5, "1,0,0") == 5
    with pytest.raises(ValueError, match="train fraction"):
        subjects.subjects_needed(5, "0,0.5,0.5")


def test_view_keeps_the_first_subjects_and_every_held_out_shard(clips, tmp_path):
    directory, _ = clips
    assert [s for s, _ in subjects.train_subjects(directory)] == ["a", "b", "c", "d"]
    view = subjects.make_view(directory, tmp_path / "views" / "n2", 2)
    train = source.ClipSource(view, "train")
    assert len(train.files) == 3 and len(train) == 6  # a's two shards and b's
    assert [s for s, _ in subjects.train_subjects(view)] == ["a", "b"]
    assert len(source.ClipSource(view, "test")) == len(source.ClipSource(directory, "test"))
    assert (view / "features.json").is_file() and (view / "metadata.json").is_file()
    # re-made with another count: the old links go
    view = subjects.make_view(directory, tmp_path / "views" / "n2", 1)
    assert len(source.ClipSource(view, "train").files) == 2
    with pytest.raises(ValueError, match="4 subjects, fewer than the 5"):
        subjects.make_view(directory, tmp_path / "views" / "n5", 5)


def test_a_shard_of_several_subjects_is_refused(tmp_path):
    spec = features.ClipSpec(clip_length=8, height=8, width=8, nir=False)
    directory = tmp_path / "mixed"
    directory.mkdir()
    spec.tfds_features().save_config(str(directory))
    _write(directory, spec, "train", [["a", "b"]])
    with pytest.raises(ValueError, match=r"holds subjects \['a', 'b'\]"):
        subjects.train_subjects(directory)


def test_table_and_plot(tmp_path):
    def run(mae, loss):
        w = {"10 s": mae, "whole": mae / 2}
        return dict(model=w, constant={"10 s": 16.0, "whole": 15.0}, pos={"10 s": 5.0,
                    "whole": 4.0}, true_pulse={"10 s": 1.0, "whole": 1.0}, loss=loss)

    results = dict(settings=dict(counts=[6, 12], seeds=[0, 1]),
                   runs={"n6/seed0": run(20.0, 0.5), "n6/seed1": run(10.0, 0.4),
                         "n12/seed0": run(4.0, 0.1)})
    text = subjects.table(results)
    rows = [line for line in text.splitlines() if line.startswith("| 6 ") or
            line.startswith("| 12 ")]
    assert rows[0].split(" | ")[5:7] == ["15.00", "7.50"]  # the mean over the two seeds
    assert rows[1].split(" | ")[3:5] == ["-", "-"]  # seed 1 not run yet
    assert "POS 5.00 / 4.00" in text
    assert subjects.plot(results, tmp_path / "s.png").stat().st_size > 0
    json.dumps(results)
    assert np.isfinite(float(rows[1].split(" | ")[5]))
