"""Dataset readers: discovery, lazily read frames, frame times and label alignment."""

import joblib
import numpy as np
import pytest
from convert_fakes import LAYOUTS, NIR_LAYOUTS

from data_prep import clips
from data_prep.readers import READERS, get_reader
from data_prep.readers.base import ClipSet, ReaderOptions, Recording
from data_prep.readers.ienet_pkl import frames_thwc
from data_prep.readers.mr_nirp import pgm_maxval
from ienet_jax.video import clock


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    made = {}

    def make(layout):
        if layout not in made:
            root = tmp_path_factory.mktemp(layout)
            made[layout] = (root, LAYOUTS[layout](root, seeds=(1, 2)))
        return made[layout]

    return make


def test_registry_covers_every_layout():
    assert set(READERS) == set(LAYOUTS)
    with pytest.raises(ValueError, match="--dataset 'nope': expected one of"):
        get_reader("nope")


@pytest.mark.parametrize("layout", sorted(set(LAYOUTS) - {"ienet_pkl"}))
def test_video_layouts(trees, layout):
    root, truth = trees(layout)
    reader = get_reader(layout)
    entries = reader.discover(root, ReaderOptions())
    assert [e.video for e in entries] == sorted(truth)
    assert len({e.subject for e in entries}) == 2
    for e in entries:
        tr = truth[e.video]
        rec = reader.load(e, ReaderOptions())
        assert isinstance(rec, Recording)
        frames = list(rec.rgb.frames())
        assert len(frames) == len(tr.rgb)
        assert frames[0].shape == tr.rgb.shape[1:] and frames[0].dtype == np.uint8
        # Colours survive (MJPG is lossy; Bayer demosaicing is near-exact).
        assert np.abs(frames[5].astype(float).mean((0, 1)) - tr.rgb[5].mean((0, 1))).max() < 3
        times = rec.rgb.times if rec.rgb.times is not None else np.arange(len(frames)) / rec.rgb.fps
        np.testing.assert_allclose(times, tr.frame_times - tr.frame_times[0], atol=2e-3)
        # The label, placed on its own clock, lines up with the truth at the frames.
        label_t = rec.label_times
        if label_t is None:
            label_t = clips.span_times(len(rec.label), times[0], times[-1])
        bvp = clock.resample(rec.label, label_t, times)
        r = np.corrcoef(bvp, tr.bvp_at(tr.frame_times))[0, 1]
        assert r > 0.98, (e.video, r)
        assert (rec.nir is not None) == (layout in NIR_LAYOUTS)
        if rec.nir is not None:
            nir = list(rec.nir.frames())
            assert nir[0].ndim == 2 and nir[0].dtype == np.uint8
            assert len(nir) in (len(tr.nir), len(tr.nir[::2]))


def test_ienet_pickles(trees):
    root, truth = trees("ienet_pkl")
    reader = get_reader("ienet_pkl")
    entries = reader.discover(root, ReaderOptions())
    assert [e.video for e in entries] == ["001_1", "002_1"]
    cs = reader.load(entries[0], ReaderOptions(), size=32)
    assert isinstance(cs, ClipSet)
    n = len(truth["001_1"].rgb) // 64
    assert cs.rgb.shape == (n, 64, 32, 32, 3) and cs.rgb.dtype == np.uint8
    assert cs.nir.shape == (n, 64, 32, 32, 1) and cs.nir.dtype == np.uint8
    np.testing.assert_array_equal(cs.start_frame, np.arange(n) * 64)
    np.testing.assert_allclose(cs.hr[0], truth["001_1"].hr[:64].mean(), atol=1e-3)
    # A missing Pulse pickle is named.
    (root / "Pulse" / "001_1_0.pkl").unlink()
    with pytest.raises(ValueError, match=r"Pulse/001_1_0.pkl: missing"):
        reader.load(entries[0], ReaderOptions())
    joblib.dump(np.zeros(64), root / "Pulse" / "001_1_0.pkl")


def test_frame_layout_detection():
    thwc = np.random.default_rng(0).integers(0, 255, (8, 5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(frames_thwc(np.moveaxis(thwc, -1, 0), 3, "x"), thwc)
    np.testing.assert_array_equal(frames_thwc(thwc.astype(np.float64) / 255, 3, "x"), thwc)
    grey = thwc[..., 0]
    for arr in (grey, grey[..., None], grey[None]):
        np.testing.assert_array_equal(frames_thwc(arr, 1, "x"), grey[..., None])
    with pytest.raises(ValueError, match="x: frame array of shape"):
        frames_thwc(np.zeros((2, 8, 5, 6, 3)), 3, "x")


def test_pgm_maxval(tmp_path):
    (tmp_path / "a.pgm").write_bytes(b"P5\n# comment\n4 2\n1023\n" + bytes(16))
    assert pgm_maxval(tmp_path / "a.pgm") == 1023
    (tmp_path / "b.pgm").write_bytes(b"JUNK")
    with pytest.raises(ValueError, match="not a PGM"):
        pgm_maxval(tmp_path / "b.pgm")


def test_unreadable_video_is_named(tmp_path):
    d = tmp_path / "subject1"
    d.mkdir()
    (d / "vid.avi").write_bytes(b"not a video")
    (d / "ground_truth.txt").write_text("1 2\n70 70\n0 0.033\n")
    reader = get_reader("ubfc_rppg")
    (entry,) = reader.discover(tmp_path, ReaderOptions())
    with pytest.raises(ValueError, match=r"subject1/vid.avi: cannot open video"):
        rec = reader.load(entry, ReaderOptions())
        list(rec.rgb.frames())


def test_generic_csv_columns(tmp_path):
    from convert_fakes import write_video

    write_video(tmp_path / "a" / "clip.avi", np.zeros((3, 48, 64, 3), np.uint8))
    (tmp_path / "a" / "clip.csv").write_text("t,PPG,other,HR\n0,1,5,70\n0.5,2,6,71\n")
    reader = get_reader("generic")
    (entry,) = reader.discover(tmp_path, ReaderOptions(subject_pattern=r"^(\w+)/"))
    assert (entry.video, entry.subject, entry.file("nir")) == ("a/clip", "a", None)
    rec = reader.load(entry, ReaderOptions())
    np.testing.assert_array_equal(rec.label, [1, 2])
    np.testing.assert_array_equal(rec.hr, [70, 71])
    np.testing.assert_array_equal(rec.label_times, [0, 0.5])
    rec = reader.load(entry, ReaderOptions(signal_column="other"))
    np.testing.assert_array_equal(rec.label, [5, 6])
    (tmp_path / "a" / "clip.csv").write_text("ppg\n1\n2\n")
    with pytest.raises(ValueError, match="no time column .*pass --label-fps"):
        reader.load(entry, ReaderOptions())
    rec = reader.load(entry, ReaderOptions(label_fps=4.0))
    np.testing.assert_array_equal(rec.label_times, [0, 0.25])
    with pytest.raises(ValueError, match="does not match"):
        reader.discover(tmp_path, ReaderOptions(subject_pattern=r"^zzz(\w+)"))
