"""Progress: throughput and ETA of the train steps, the compiling first step excluded."""

import inspect

from ienet_jax.train.metrics_log import Progress


def test_progress_rates_and_line():
    progress = Progress(num_steps=10, global_batch=4)
    assert progress.rates() == {}
    assert progress.line(0, 1.5) == "step 0/10 (0%) | loss 1.5"
    progress.add(30.0, first=True)  # compile: ignored
    progress.add(1.0)
    progress.add(3.0)
    assert progress.rates() == {"step_time_s": 2.0, "clips_per_s": 2.0}
    assert "2 clips/s | 2 s/step | ETA" in progress.line(5, 0.25)
    assert list(inspect.signature(Progress.rates).parameters) == ["self"]  # no unused argument
