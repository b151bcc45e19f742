"""The trainer loop: NaN stop with the last good checkpoint intact, stage-2 initialisation,
reruns in a workdir (config check, resumed log), Ctrl-C, start-up data checks, data errors."""

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import grain
import jax
import numpy as np
import pytest
from train_configs import ienet_config, tscan_config

from ienet_jax.convert import save_converted
from ienet_jax.train.checkpoint import load_variables
from ienet_jax.train.inputs import SyntheticClips, synthetic_dataset
from ienet_jax.train.loop import Interrupted, train_and_evaluate


@pytest.fixture(autouse=True, scope="module")
def compilation_cache(tmp_path_factory):
    """Runs of the same program in this module compile once (persistent XLA cache)."""
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
    yield
    jax.config.update("jax_compilation_cache_dir", before)


def batches_with_nan(config, bad_batch: int, batch: int):
    clips = SyntheticClips(config.model, 64, seed=0, fps=config.data.synthetic.fps)

    def poison(i, clip):
        if i // batch == bad_batch:
            clip = dict(clip, bvp=np.full_like(clip["bvp"], np.nan))
        return clip

    ds = grain.MapDataset.source(clips).map_with_index(poison).batch(batch)
    return iter(ds.to_iter_dataset())


def test_nan_batch_stops_with_last_good_checkpoint(tmp_path):
    config = tscan_config(steps=6, batch=8)
    config.checkpoint.every_steps = 2
    with pytest.raises(FloatingPointError, match=r"non-finite .* step 3 .*Last good checkpoint: "
                                                 r"step 2"):
        train_and_evaluate(config, tmp_path, train_data=batches_with_nan(config, 3, 8))
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [2]
    params = load_variables(tmp_path)["params"]
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))


def test_stage_and_loss_config_errors(tmp_path):
    config = tscan_config()
    config.train.stage = 2
    with pytest.raises(ValueError, match="train.stage=2"):
        train_and_evaluate(config, tmp_path)
    config = tscan_config()
    config.train.loss.mse = 0.0
    with pytest.raises(ValueError, match="train.loss"):
        train_and_evaluate(config, tmp_path)


def _split(params):
    flat = {"/".join(str(k.key) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_leaves_with_path(params)}
    fee = {k: v for k, v in flat.items() if k.startswith("fee/")}
    rest = {k: v for k, v in flat.items() if not k.startswith("fee/")}
    return rest, fee


@pytest.mark.slow
def test_stage2_from_stage1_checkpoint_and_converted_reference(tmp_path):
    stage1 = ienet_config("quickstart", steps=2)
    train_and_evaluate(stage1, tmp_path / "stage1")
    stage1_vars = load_variables(tmp_path / "stage1")
    save_converted(tmp_path / "converted", stage1_vars, stage1.model)

    for source in ("stage1", "converted"):
        config = ienet_config("reference_stage2", steps=2)
        config.train.init_from = str(tmp_path / source)
        config.train.freeze_steps = 2  # the whole run: the stage-1 network must not move
        state = train_and_evaluate(config, tmp_path / f"stage2_{source}")
        rest, fee = _split(jax.device_get(state.params))
        rest1, fee1 = _split(stage1_vars["params"])
        assert not fee1 and fee, "stage 1 has no FEE head, stage 2 does"
        assert rest.keys() == rest1.keys()
        for k in rest:
            np.testing.assert_array_equal(rest[k], rest1[k], err_msg=k)
        # FEE is trained (through its soft gate): its zero-initialised BN biases moved
        biases = [v for k, v in fee.items() if k.endswith("bias")]
        assert biases and any(np.any(b != 0) for b in biases)


def test_trains_on_converted_clips_with_the_grain_pipeline(tmp_path):
    from data_fixtures import write_dataset

    from ienet_jax.data.features import ClipSpec

    config = tscan_config(steps=2, batch=4, mesh=(4, 2))
    spec = ClipSpec(clip_length=config.model.clip_length, height=config.model.frame_size,
                    width=config.model.frame_size, nir=False)
    config.data.dir = str(write_dataset(tmp_path / "clips", spec,
                                        {"train": 10, "validation": 5}))
    config.eval.every_steps = 2
    config.eval.num_batches = 0  # the whole split: 5 clips, the last batch padded + masked
    train_and_evaluate(config, tmp_path / "run")
    rows = [line for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert any('"split": "validation"' in r for r in rows)
    state = json.loads((tmp_path / "run/checkpoints/2/data/process_0-of-1.json").read_text())
    assert state["batches"] == 2  # the pipeline iterator's own state was checkpointed
    stats = json.loads((tmp_path / "run/train_stats.json").read_text())
    assert stats["hr_mean"] == pytest.approx(np.mean([60 + k % 7 * 10 for k in range(10)]))
    assert stats["num_clips"] == 10

    # padding rows of the last eval batch are valid clips: every per-row output is finite
    from ienet_jax.models import build, contract
    from ienet_jax.train import inputs, objectives

    last = list(inputs.eval_iterator(config))[-1]
    assert not last["mask"].all() and (last["fps"] == 30.0).all() and (last["hr"] > 0).all()
    batch = {k: v for k, v in last.items() if k in inputs.DEVICE_FIELDS}
    variables = jax.device_get(load_variables(tmp_path / "run"))
    tscan = contract.get("tscan")
    outputs = build(config.model).apply(variables, *tscan.inputs(batch), train=False)
    hr = objectives.predicted_hr("tscan", outputs, batch["fps"])
    per_row = objectives.losses.mse(outputs[tscan.output], tscan.label(batch),
                                    reduction="none")
    for name, value in (("rppg", outputs["rppg"]), ("hr", hr), ("mse", per_row)):
        assert np.isfinite(np.asarray(value)).all(), name
    assert all(np.isfinite(v) for r in _steps(tmp_path / "run", "validation")
               for k, v in r.items() if k not in ("step", "split"))



def test_init_from_a_model_without_batch_stats(tmp_path):
    """TS-CAN has no batch statistics (this raised KeyError 'batch_stats')."""
    from ienet_jax.models import build
    from ienet_jax.train.state import abstract_params

    config = tscan_config(steps=1)
    shapes = abstract_params(build(config.model), config.model)
    params = jax.tree.map(lambda s: np.full(s.shape, 0.25, s.dtype), shapes)
    save_converted(tmp_path / "converted", {"params": params}, config.model)
    config.train.init_from = str(tmp_path / "converted")
    config.train.freeze_steps = 1  # the loaded parameters must come out unchanged
    state = train_and_evaluate(config, tmp_path / "run")
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(params),
                            jax.tree.leaves(jax.device_get(state.params))):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def _steps(workdir, split="train"):
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def _tensorboard(workdir, tag: str) -> dict[int, float]:
    """`{step: value}` of a scalar `tag` in the run's TensorBoard event files."""
    from tensorboardX.proto import event_pb2

    from ienet_jax.data import tfrecord

    out = {}
    for path in sorted((workdir / "tensorboard").glob("events.out.tfevents.*")):
        for record in tfrecord.iter_records(path):
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.tag == tag:
                    out[event.step] = value.simple_value
    return out


def test_rerun_checks_the_config_and_logs_each_step_once(tmp_path, caplog):
    """Start-up log lines without orbax's; the learning rate logged; a resume after a crash
    (steps logged past the last checkpoint) logs each step once; a rerun with another model
    in the same workdir is refused before anything is written; a longer run is allowed."""
    caplog.set_level(logging.INFO)
    config = tscan_config(steps=4, batch=8)  # checkpoints at 2 and 4
    config.logging.tensorboard = True
    train_and_evaluate(config, tmp_path)
    text = caplog.text
    for line in ("initialising the train state", "compiling the train step",
                 "train step compiled: the first step took"):
        assert line in text
    assert not [r for r in caplog.records if "/orbax/" in r.pathname], "orbax INFO lines"
    rows = _steps(tmp_path)
    assert [r["learning_rate"] for r in rows] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4])
    assert _tensorboard(tmp_path, "train/learning_rate") == pytest.approx(
        {1: 1e-3, 2: 1e-3, 3: 5e-4, 4: 5e-4})

    shutil.rmtree(tmp_path / "checkpoints" / "4")  # a crash after logging steps 3 and 4
    longer = tscan_config(steps=6, batch=8)
    longer.train.lr_decay_every = 2  # as before: the same program (compiled once)
    train_and_evaluate(longer, tmp_path)
    assert [r["step"] for r in _steps(tmp_path)] == [1, 2, 3, 4, 5, 6]

    saved = (tmp_path / "config.json").read_text()
    other = tscan_config(steps=6, batch=8)
    other.model.frame_size = 16
    other.train.grad_clip_norm = 1.0
    with pytest.raises(ValueError, match=r"--workdir=.* different config .*model.frame_size: "
                                         r"12 → 16; train.grad_clip_norm: 0.0 → 1.0. Nothing "
                                         r"was written.*new --workdir.*train.init_from="):
        train_and_evaluate(other, tmp_path)
    assert (tmp_path / "config.json").read_text() == saved


class _SignalAt:
    """A batch iterator sending `count` signals `signum` to this process before batch `at`."""

    def __init__(self, iterator, at: int, count: int = 1, signum=signal.SIGINT):
        self.iterator, self.at, self.count, self.n = iterator, at, count, 0
        self.signum = signum

    def __iter__(self):
        return self

    def __next__(self):
        self.n += 1
        if self.n == self.at:
            for _ in range(self.count):
                os.kill(os.getpid(), self.signum)
        return next(self.iterator)


def _synthetic(config):
    return iter(synthetic_dataset(config, training=True, batch_size=8))


def test_ctrl_c_checkpoints_and_raises_interrupted_twice_aborts(tmp_path):
    """SIGINT and SIGTERM: a checkpoint after the current step, then `Interrupted` (main
    exits 75 on it); a second Ctrl-C aborts at once."""
    # As in a terminal: CI may start the tests with SIGINT ignored (`cmd &`), which the
    # trainer rightly leaves alone.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_checks(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_checks(tmp_path):
    config = tscan_config(steps=6, batch=8)
    config.checkpoint.every_steps = 0
    for signum in (signal.SIGINT, signal.SIGTERM):
        name = signal.Signals(signum).name
        with pytest.raises(Interrupted, match=rf"{name} at step 3, resumable.*from step 3"):
            train_and_evaluate(config, tmp_path / name,
                               train_data=_SignalAt(_synthetic(config), 3, signum=signum))
        assert (tmp_path / name / "checkpoints/3").is_dir()
        assert json.loads((tmp_path / name / "status.json").read_text())["finished"] is False
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, tmp_path / "twice",
                           train_data=_SignalAt(_synthetic(config), 3, count=2))
    assert not (tmp_path / "twice/checkpoints/2").exists()


def _clips(directory, config, *, length=None, size=None, nir=False, splits=None, shards=2):
    from data_fixtures import write_dataset

    from ienet_jax.data.features import ClipSpec

    size = size or config.model.frame_size
    spec = ClipSpec(clip_length=length or config.model.clip_length, height=size, width=size,
                    nir=nir)
    return str(write_dataset(directory, spec, splits or {"train": 10, "validation": 5}, shards))


def test_dataset_checked_against_the_model_at_start_up(tmp_path, caplog):
    """Frame size, clip length, NIR and every split the run reads: errors before anything is
    written; longer stored clips are cut to the model's length, and the log says how."""
    from ienet_jax.train import inputs

    config = tscan_config(steps=2, batch=4)  # TS-CAN tiny: 8 frames of 12x12
    config.eval.every_steps = 2
    cases = [
        (dict(size=16), r"16x16 pixels .*model.frame_size=12: pass --config.model.frame_size="
                        r"16 .*--size 12"),
        (dict(length=4), r"clips of 4 frames .*model.clip_length=8: pass --config.model."
                         r"clip_length=4 .*--clip-length 8"),
        (dict(splits={"train": 10}), r"config key eval.split='validation': .*no shards for "
                                     r"split 'validation'.*--config.eval.every_steps=0"),
    ]
    for i, (kw, message) in enumerate(cases):
        config.data.dir = _clips(tmp_path / f"clips{i}", config, **kw)
        with pytest.raises(ValueError, match=message):
            train_and_evaluate(config, tmp_path / f"run{i}")
        assert not (tmp_path / f"run{i}").exists()
    ienet = ienet_config(steps=1, batch=4)
    ienet.data.dir = _clips(tmp_path / "rgb_only", ienet)
    with pytest.raises(ValueError, match=r"stores RGB only .*model.name='ienet' needs RGB and NIR"):
        train_and_evaluate(ienet, tmp_path / "run_ienet")
    ienet.model.modalities = ("rgb",)  # one backbone: the pipeline reads RGB only
    ienet.train.batch_size = 8  # a multiple of the 8 test devices
    train_and_evaluate(ienet, tmp_path / "run_ienet_rgb")
    params = load_variables(tmp_path / "run_ienet_rgb")["params"]
    assert "rgb" in params and "nir" not in params

    caplog.set_level(logging.INFO)
    config.data.dir = _clips(tmp_path / "long", config, length=20)
    inputs.check_data(config)
    assert ("stored clips hold 20 frames, model.clip_length=8: training takes the first 8 "
            "frames of each stored clip (pass --config.data.augment.temporal_crop=True for "
            "random 8-frame windows), evaluation the first 8 frames") in caplog.text
    assert next(inputs.train_iterator(config))["rgb"].shape == (4, 8, 12, 12, 3)
    assert next(inputs.eval_iterator(config))["bvp"].shape == (4, 8)


def test_corrupt_record_mid_run_checkpoints_first_then_names_it(tmp_path):
    from data_fixtures import shard_paths

    from ienet_jax.data import tfrecord
    from ienet_jax.train import workdir as workdir_lib

    config = tscan_config(steps=4, batch=4, mesh=(4, 2))
    config.checkpoint.every_steps = 0
    config.data.shuffle = False  # batches 0-3, 4-7, 8-11, …
    clips = Path(_clips(tmp_path / "clips", config, splits={"train": 12}))
    config.data.dir = str(clips)
    shard = shard_paths(clips, "train", 2)[1]  # records 6-11
    offset = int(tfrecord.RecordIndex.build(shard).entries[3, 0]) + 5  # record 9: step 3
    with open(shard, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x55]))
    # found at start-up, where the training labels are read (train_stats.json)
    with pytest.raises(ValueError, match=rf"training split 'train': .*{shard.name}: record 3 "
                                         r"at byte offset \d+: .*data.skip_corrupt=True"):
        train_and_evaluate(config, tmp_path / "early")
    assert not (tmp_path / "early").exists()
    # mid-run (the file went bad after the start): a run whose train_stats.json exists
    run = tmp_path / "run"
    run.mkdir()
    config.data.skip_corrupt = True
    workdir_lib.write_train_stats(config, run)
    config.data.skip_corrupt = False
    with pytest.raises(ValueError, match=rf"training split 'train': .*{shard.name}: record 3 at "
                                         r"byte offset \d+: .*CRC.*at step 2; checkpoint of "
                                         r"step 2 .*--config.data.skip_corrupt=True"):
        train_and_evaluate(config, run)
    assert (run / "checkpoints/2").is_dir()
    config.data.skip_corrupt = True
    train_and_evaluate(config, run)  # resumes before the failed batch, skipping record 9
    rows = _steps(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["skipped_records"] == 1


def test_workdir_config_differences_name_only_what_changes_the_checkpoint():
    from ienet_jax.train.workdir import differences

    old = json.loads(tscan_config().to_json_best_effort())
    new = tscan_config(steps=400, batch=16, mesh=(4, 2))
    new.train.learning_rate = 1e-4
    new.model.conv_impl = "xla"  # execution only
    new.eval.every_steps = 10
    new.train.grad_clip_norm = 0.5
    assert differences(old, json.loads(new.to_json_best_effort())) == [
        "train.grad_clip_norm: 0.0 → 0.5"]
    new.data.modalities = ("rgb", "nir")
    new.train.grad_accum = 2
    assert differences(old, json.loads(new.to_json_best_effort())) == [
        "data.modalities: ['rgb'] → ['rgb', 'nir']", "train.grad_accum: 1 → 2",
        "train.grad_clip_norm: 0.0 → 0.5"]


def test_runs_written_before_a_model_key_existed_resume_and_evaluate(tmp_path):
    """A workdir whose config.json predates `model.context.residual` is still the same config
    (resume allowed) and evaluate's `--workdir` config gets the key; a real change is refused."""
    from ienet_jax.evaluate import _workdir_config
    from ienet_jax.train.workdir import check_compatible

    config = ienet_config(steps=1)
    saved = json.loads(config.to_json_best_effort())
    del saved["model"]["context"]["residual"]
    (tmp_path / "checkpoints" / "1").mkdir(parents=True)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_compatible(config, tmp_path)
    assert _workdir_config(tmp_path).model.context.residual is False
    config.model.context.residual = True
    with pytest.raises(ValueError, match=r"model.context.residual: False → True"):
        check_compatible(config, tmp_path)


def test_setup_traces_the_model_once_and_inits_as_model_init(tmp_path, monkeypatch):
    """Start-up traces the model once before the train step (shapes, optimiser, shardings,
    init and the restore target share `trace_init`), and the state's variables are
    `model.init`'s for the run's init key."""
    from ienet_jax.models import build
    from ienet_jax.models import ienet as ienet_module
    from ienet_jax.train.loop import setup
    from ienet_jax.train.state import _init_variables

    traces = []
    real = ienet_module.mdef

    def counting(*args, **kwargs):
        traces.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ienet_module, "mdef", counting)
    config = ienet_config("reference_stage2", steps=1)
    config.train.freeze_steps = 1
    run = setup(config, tmp_path / "fresh")
    assert len(traces) == 1
    init_rng, _ = jax.random.split(jax.random.PRNGKey(int(config.seed)))
    expected = _init_variables(build(config.model), config.model, init_rng)
    got = {"params": run.state.params, "batch_stats": run.state.batch_stats}
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(jax.device_get(got)),
                            jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
