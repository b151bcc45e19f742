"""Manifest and summary text (data_prep.report)."""

from data_prep import report


def _ok(video, split, clips, **info):
    return {"video": video, "subject": video, "split": split, "path": f"/raw/{video}.avi",
            "status": "ok", "info": {"clips": clips, "detection_rate": 1.0,
                                     "hr_sources": {"provided HR series": clips}, **info}}


def test_manifest_and_summary():
    items = [
        _ok("a", "train", 3, sanity={"status": "ok"}, nir_box="own"),
        _ok("b", "test", 2, sanity={"status": "disagree", "pos_hr": 60.0, "label_hr": 90.0},
            nir_box="rgb (no face found in NIR)"),
        {"video": "c", "subject": "c", "split": "validation", "path": "/raw/c.avi",
         "status": "failed", "reason": "/raw/c.avi: cannot open video"},
    ]
    m = report.manifest({"size": 64}, {"a": "train", "b": "test", "c": "validation"}, items,
                        {"train": [{"file": "x-train.tfrecord-00000-of-00001"}]})
    assert m["counts"] == {"videos": 3, "ok": 2, "failed": 1, "clips": 5}
    assert m["splits"]["train"]["clips"] == 3 and m["splits"]["validation"]["clips"] == 0
    assert m["splits"]["validation"]["subjects"] == ["c"]
    text = report.summary_text(m)
    assert "converted 2 of 3 videos into 5 clips; 1 failed" in text
    assert "/raw/b.avi: POS 60.0 bpm vs label 90.0 bpm" in text
    assert "1 FAILED videos:\n  /raw/c.avi: /raw/c.avi: cannot open video" in text
    assert "own box (1 videos); rgb box (1 videos)" in text
    assert "provided HR series (5 clips)" in text


def test_a_split_left_without_clips_is_a_warning():
    items = [_ok("a", "train", 3),
             {"video": "c", "subject": "c", "split": "validation", "path": "/raw/c.avi",
              "status": "failed", "reason": "/raw/c.avi: no face found"}]
    m = report.manifest({}, {"a": "train", "c": "validation", "d": "test"}, items, {})
    text = report.summary_text(m)
    assert "WARNING: split 'validation' has 0 clips: all its 1 videos failed" in text
    assert "WARNING: split 'test' has 0 clips: none of its videos was converted" in text
    assert "split 'train'" not in text
    m = report.manifest({}, {"a": "train"}, items[:1], {})
    assert "WARNING: split 'test' has 0 clips: no subjects were assigned" in (
        report.summary_text(m))
