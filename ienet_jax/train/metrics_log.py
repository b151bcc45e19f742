"""Run metrics: absl log lines, a JSON-lines file and TensorBoard events, on process 0 only.

`MetricsLog(workdir, resume_step=s)` writes `WORKDIR/metrics.jsonl` (one `{"step", "split", ...}`
object per call, appended across restarts) and TensorBoard event files under
`WORKDIR/tensorboard` (tag `split/name`). A run resumed from the checkpoint of step `s` first
drops the rows of steps after `s` (logged before a crash, about to be logged again) from
`metrics.jsonl` and purges them from TensorBoard, so each step appears once. `Progress`
turns step timings into the periodic progress line
(`step 120/1000 (12%) | 3.4 clips/s | 0.58 s/step | ETA 8m30s | loss 0.412`).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
from absl import logging


class MetricsLog:
    """Append-only metrics sink; a no-op on processes other than 0."""

    def __init__(self, workdir: str | Path, tensorboard: bool = True, resume_step: int = 0):
        self.active = jax.process_index() == 0
        self.path = Path(workdir) / "metrics.jsonl"
        self._tb = None
        if self.active:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._truncate(resume_step)
            if tensorboard:
                try:
                    from tensorboardX import SummaryWriter

                    self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"),
                                             purge_step=int(resume_step) + 1)
                except ImportError:  # optional
                    logging.warning("tensorboardX not installed: no TensorBoard events")

    def _truncate(self, resume_step: int) -> None:
        """Drops rows of steps after `resume_step` (a torn last line too)."""
        if not self.path.is_file():
            return
        kept, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                keep = int(json.loads(line)["step"]) <= resume_step
            except (ValueError, KeyError, TypeError):
                keep = False
            if keep:
                kept.append(line + "\n")
            else:
                dropped += 1
        if dropped:
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(kept))
            tmp.replace(self.path)
            logging.info("%s: dropped %d rows after step %d (logged before the restart)",
                         self.path, dropped, resume_step)

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if not self.active:
            return
        values = {k: float(v) for k, v in metrics.items()}
        with self.path.open("a") as f:
            f.write(json.dumps({"step": int(step), "split": split, **values}) + "\n")
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(f"{split}/{name}", value, int(step))
            self._tb.flush()
        shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()))
        logging.info("[%s] step %d: %s", split, step, shown)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """Throughput and ETA from train-step times (the first, compiling, step excluded)."""

    def __init__(self, num_steps: int, global_batch: int):
        self.num_steps, self.global_batch = num_steps, global_batch
        self._seconds = 0.0
        self._steps = 0

    def add(self, seconds: float, first: bool = False) -> None:
        """Record one train step that took `seconds` (compile steps: `first=True`, ignored)."""
        if not first:
            self._seconds += seconds
            self._steps += 1

    def rates(self) -> dict[str, float]:
        if not self._steps:
            return {}
        step_time = self._seconds / self._steps
        return {"step_time_s": step_time, "clips_per_s": self.global_batch / step_time}

    def line(self, step: int, loss: float) -> str:
        r = self.rates()
        pct = 100.0 * step / max(self.num_steps, 1)
        if not r:
            return f"step {step}/{self.num_steps} ({pct:.0f}%) | loss {loss:.4g}"
        eta = r["step_time_s"] * (self.num_steps - step)
        return (f"step {step}/{self.num_steps} ({pct:.0f}%) | {r['clips_per_s']:.3g} clips/s | "
                f"{r['step_time_s']:.3g} s/step | ETA {_duration(eta)} | loss {loss:.4g}")
