"""Small training configs shared by the trainer tests (tiny shapes, few steps)."""

from __future__ import annotations

from configs import common, ienet, tscan


def tscan_config(steps: int = 4, batch: int = 8, mesh=(-1, 1)):
    """TS-CAN `tiny` on synthetic clips: compiles in seconds."""
    c = common.build_config(tscan.model_config("tiny"), "quickstart", "tiny")
    c.train.num_steps = steps
    c.train.batch_size = batch
    c.eval.batch_size = batch
    c.eval.every_steps = 0
    c.eval.num_batches = 1
    c.checkpoint.every_steps = 2
    c.checkpoint.async_save = False
    c.logging.every_steps = 1
    c.logging.tensorboard = False
    c.data.synthetic.num_clips = 32
    c.mesh.shape = mesh
    return c


def micro_ienet_model():
    """An IENet far below `tiny` (2 stages of depth 1, 16 frames of 16×16) for trainer tests."""
    m = ienet.model_config("tiny")
    m.update(dict(clip_length=16, frame_size=16, dims=(6, 12), depths=(1, 1), heads=(1, 1),
                  window=(2, 4, 4)))
    m.context.enabled = False
    return m


def ienet_config(preset: str = "quickstart", steps: int = 2, batch: int = 8, mesh=(-1, 1)):
    c = common.build_config(micro_ienet_model(), preset, "micro")
    c.train.num_steps = steps
    c.train.batch_size = batch
    c.eval.batch_size = batch
    c.eval.every_steps = 0
    c.eval.num_batches = 1
    c.checkpoint.every_steps = 0
    c.checkpoint.async_save = False
    c.logging.every_steps = 1
    c.logging.tensorboard = False
    c.data.synthetic.num_clips = 32
    c.mesh.shape = mesh
    return c
