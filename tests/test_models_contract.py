"""The model contract: a third model, registered in a few lines, goes through the real
trainer, evaluator and predictor without any of them knowing its name; and the registry's
and the table validation's errors name the config key."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import linen as nn

from ienet_jax.models import contract


class MeanColour(nn.Module):
    """Per-frame mean colour `[B, T, 3]` → temporal conv → tanh → Dense: a pulse `[B, T]`."""

    features: int

    @nn.compact
    def __call__(self, rgb, *, train: bool):
        x = jnp.mean(rgb, axis=(2, 3))
        x = jnp.tanh(nn.Conv(self.features, (3,))(x))
        return {"pulse": nn.Dense(1)(x)[..., 0]}


class MeanColourContract(contract.ModelContract):
    name, output = "mean_colour", "pulse"

    def build(self, model_config):
        return MeanColour(**contract.check(model_config, {"features": contract.POSITIVE}))


contract.register(MeanColourContract())


def _config(steps: int = 2):
    from configs import common

    section = ml_collections.ConfigDict(dict(name="mean_colour", clip_length=16, frame_size=16,
                                             features=4))
    c = common.build_config(section, "quickstart", "toy")
    c.train.loss.neg_pearson = 1.0
    c.train.num_steps = steps
    c.train.batch_size = c.eval.batch_size = 8
    c.eval.every_steps = 1
    c.eval.num_batches = 1
    c.checkpoint.async_save = False
    c.logging.tensorboard = False
    c.data.synthetic.num_clips = 16
    return c


def train_evaluate_predict(config, tmp_path):
    """Trains `config` (synthetic clips) with the real trainer, then evaluates it on 2 test
    videos and predicts one face video through the real tools; returns the train state.
    Shared by every model family's test (a model's name appears in no tool)."""
    from test_evaluate import _write_dataset
    from test_predict import _write

    from data_prep.synth import render_recording
    from ienet_jax.evaluate import evaluate
    from ienet_jax.predict import predict
    from ienet_jax.train.loop import train_and_evaluate

    name = config.model.name
    state = train_and_evaluate(config, tmp_path / "run")  # synthetic clips
    assert int(state.step) == config.train.num_steps

    _write_dataset(tmp_path / "clips")  # 2 test videos of 128 frames, 16×16 crops
    result = evaluate(config, tmp_path / "run", data_dir=tmp_path / "clips", plots=False)
    assert result["evaluation"]["model"] == name
    assert result[name]["n"] == 2 and f"{name}_fee" not in result

    rec = render_recording(seed=3, seconds=3.0, fps=30.0, size=(256, 192), preset="easy")
    video = _write(tmp_path / "face.avi", rec.rgb)
    out = predict(video, method="model", checkpoint=tmp_path / "run", output=tmp_path / "out")
    assert out["model"] == name and np.isfinite(out["hr_bpm"])
    assert "fee_hr_bpm" not in out
    return state


def test_a_third_model_trains_evaluates_and_predicts(tmp_path):
    state = train_evaluate_predict(_config(), tmp_path)
    assert state.params["Conv_0"]["kernel"].shape == (3, 3, 4)


def test_unknown_model_name_and_bad_values_name_the_key():
    from ienet_jax import models
    from ienet_jax.train.objectives import check_weights

    with pytest.raises(ValueError, match=r"model.name must be one of \('ienet', 'tscan', "
                                         r"'physnet'"):
        contract.get("no_such_model")
    section = _config().model
    with pytest.raises(ValueError, match="config key model.features must be a positive int, "
                                         "got -1"):
        models.build(ml_collections.ConfigDict(dict(section.to_dict(), features=-1)))
    loss = ml_collections.ConfigDict(dict(neg_pearson=0.0, spectral=0.0, l1_hr=0.0, mse=1.0))
    check_weights(loss, section)  # a supported term
    loss.update(mse=0.0, l1_hr=1.0)
    with pytest.raises(ValueError, match="train.loss.l1_hr needs an HR output"):
        check_weights(loss, section)


def test_modules_take_every_value_from_the_config():
    from ienet_jax.models.fee import FEEHead
    from ienet_jax.models.ienet import IENet
    from ienet_jax.models.physnet import PhysNet
    from ienet_jax.models.tscan import TSCAN

    for module in (IENet, TSCAN, PhysNet, FEEHead):  # no field defaults duplicating configs/*.py
        with pytest.raises(TypeError, match="missing"):
            module()


def test_upgrade_fills_nested_added_keys_of_old_ienet_configs():
    """A config saved before `model.context.residual` existed gets the value that reproduces
    its checkpoints (False); a saved value is kept."""
    from configs import ienet
    from ienet_jax.models import contract

    old = ienet.model_config("tiny")
    with old.unlocked():
        del old.context["residual"]
    assert "residual" not in old.context
    assert contract.upgrade(old, "old.json").context.residual is False
    new = ienet.model_config("tiny")
    new.context.residual = True
    assert contract.upgrade(new, "new.json").context.residual is True
