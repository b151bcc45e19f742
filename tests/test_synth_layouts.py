"""data_prep.synth.layouts: the recording plan, VIPL-HR scenarios, atomic writes."""

from pathlib import Path

import pytest

from data_prep.synth import get_preset
from data_prep.synth.layouts import is_complete, plan, scenario, write_job


def test_plan_names_and_seed_keys():
    jobs = plan("vipl_hr", 9, 2, 3, 1.0, None, (160, 120), "easy")
    assert [j.relpath for j in jobs[:4]] == ["p1/v1", "p1/v2", "p1/v3", "p2/v1"]
    assert jobs[0].fps == 25.0 and jobs[0].subject == "p1"
    assert jobs[0].subject_key == jobs[2].subject_key != jobs[3].subject_key  # same person
    assert len({j.session_key for j in jobs}) == 6
    ubfc = plan("ubfc_rppg", 9, 2, 1, 1.0, 30.0, (160, 120), "hard")
    assert [j.relpath for j in ubfc] == ["subject1", "subject2"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layout="pure"), "unknown layout"),
        (dict(subjects=0), "subjects"),
        (dict(preset="medium"), "preset"),
    ],
)
def test_plan_rejects_bad_arguments(kwargs, match):
    args = dict(
        layout="vipl_hr",
        seed=0,
        subjects=1,
        sessions=1,
        seconds=1.0,
        fps=None,
        size=(160, 120),
        preset="easy",
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        plan(**args)


def test_vipl_scenarios():
    cfg = get_preset("easy")
    assert scenario(cfg, 1) == (cfg, 0.0)
    assert scenario(cfg, 3)[0].motion.events_per_min > cfg.motion.events_per_min
    assert scenario(cfg, 4)[0].optics.level < 1.0 < scenario(cfg, 5)[0].optics.level
    assert scenario(cfg, 6)[0].appearance.face_frac[1] < cfg.appearance.face_frac[1]
    assert scenario(cfg, 7) == (cfg, 25.0)


def test_write_refuses_a_foreign_folder(tmp_path: Path):
    (job,) = plan("ubfc_rppg", 0, 1, 1, 0.2, None, (160, 120), "easy")
    (tmp_path / job.relpath).mkdir()
    with pytest.raises(ValueError, match="not written by synthesize"):
        write_job(tmp_path, job)
    (tmp_path / job.relpath).rmdir()
    assert write_job(tmp_path, job) == 6 and is_complete(tmp_path, job)
    assert write_job(tmp_path, job) == 0  # already complete
