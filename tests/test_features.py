"""Clip feature spec: tfds FeaturesDict, serialise/parse round trip, clear errors."""

import json

import numpy as np
import pytest

from ienet_jax.data import features


def _example(spec, seed=0):
    rng = np.random.default_rng(seed)
    shapes = spec.shapes()
    ex = {
        "rgb": rng.integers(0, 256, shapes["rgb"][0], dtype=np.uint8),
        "bvp": rng.standard_normal(spec.clip_length).astype(np.float32),
        "hr": np.float32(72.5),
        "fps": np.float32(30.0),
        "subject": "p1",
        "video": "p1/v1/source1",
        "start_frame": np.int64(128),
    }
    if spec.nir:
        ex["nir"] = rng.integers(0, 256, shapes["nir"][0], dtype=np.uint8)
    return ex


@pytest.mark.parametrize("nir,encoding", [(True, "zlib"), (False, "zlib"), (True, "bytes")])
def test_round_trip(nir, encoding):
    spec = features.ClipSpec(8, 6, 5, nir=nir, frame_encoding=encoding)
    ex = _example(spec)
    data = features.serialize_example(spec, ex)
    assert isinstance(data, bytes)
    back = features.deserialize_example_np(spec, data)
    assert set(back) == set(spec.names) == set(ex)
    for name, (shape, dtype) in spec.shapes().items():
        if dtype is str:
            assert back[name] == ex[name]
        else:
            assert back[name].dtype == dtype and back[name].shape == shape
            np.testing.assert_array_equal(back[name], ex[name])


def test_zlib_is_smaller_for_smooth_frames():
    spec_z = features.ClipSpec(16, 32, 32, nir=False)
    spec_b = features.ClipSpec(16, 32, 32, nir=False, frame_encoding="bytes")
    ex = _example(spec_z)
    ex["rgb"] = np.full_like(ex["rgb"], 100)
    assert len(features.serialize_example(spec_z, ex)) < len(
        features.serialize_example(spec_b, ex)) / 10


def test_validation_errors_name_the_feature():
    spec = features.ClipSpec(8, 6, 5, nir=True)
    ex = _example(spec)
    with pytest.raises(ValueError, match="'rgb' has shape"):
        features.serialize_example(spec, {**ex, "rgb": ex["rgb"][:4]})
    with pytest.raises(ValueError, match="'nir' has dtype"):
        features.serialize_example(spec, {**ex, "nir": ex["nir"].astype(np.float32)})
    with pytest.raises(ValueError, match="'bvp' holds NaN"):
        features.serialize_example(spec, {**ex, "bvp": np.full(8, np.nan, np.float32)})
    ex.pop("nir")
    with pytest.raises(ValueError, match=r"missing \['nir'\]"):
        features.serialize_example(spec, ex)
    with pytest.raises(ValueError, match="frame_encoding"):
        features.ClipSpec(8, 6, 5, nir=True, frame_encoding="png")


def test_spec_from_features_json(tmp_path):
    spec = features.ClipSpec(8, 6, 5, nir=True)
    fd = spec.tfds_features()
    fd.save_config(str(tmp_path))
    content = json.loads((tmp_path / "features.json").read_text())
    assert content["featuresDict"]["features"]["rgb"]["tensor"]["encoding"] == "zlib"
    assert features.ClipSpec.from_directory(tmp_path) == spec
    with pytest.raises(ValueError, match="features.json not found"):
        features.ClipSpec.from_directory(tmp_path / "nope")
