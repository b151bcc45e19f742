"""The conversion's manifest (JSON) and printed/saved summary (text)."""

from __future__ import annotations

import collections

from data_prep.splits import SPLITS


def manifest(identity: dict, subject_split: dict[str, str], items: list[dict],
             shards: dict[str, list[dict]]) -> dict:
    """Everything about an output directory: options, splits, shards, per-video results."""
    videos = []
    for item in sorted(items, key=lambda i: i["video"]):
        v = {k: item[k] for k in ("video", "subject", "split", "path", "status")}
        if item["status"] == "ok":
            info = item["info"]
            v.update({k: info.get(k) for k in (
                "clips", "frames", "fps", "first_frame", "detection_rate", "nir_box",
                "nir_detection_rate", "hr_sources", "sanity", "bytes", "seconds")
                if k in info})
        else:
            v["reason"] = item["reason"]
        videos.append(v)
    counts = collections.Counter(v["status"] for v in videos)
    clips = collections.Counter()
    for v in videos:
        if v["status"] == "ok":
            clips[v["split"]] += v["clips"]
    return {
        "options": identity,
        "splits": {s: {"subjects": sorted(k for k, x in subject_split.items() if x == s),
                       "clips": clips.get(s, 0), "shards": shards.get(s, [])}
                   for s in SPLITS},
        "counts": {"videos": len(videos), "ok": counts.get("ok", 0),
                   "failed": counts.get("failed", 0), "clips": sum(clips.values())},
        "videos": videos,
    }


def empty_split_warnings(m: dict) -> list[str]:
    """One `WARNING` line per split left with 0 clips, saying why."""
    lines = []
    for s in SPLITS:
        if m["splits"][s]["clips"]:
            continue
        videos = [v for v in m["videos"] if v["split"] == s]
        failed = sum(v["status"] != "ok" for v in videos)
        if not m["splits"][s]["subjects"]:
            why = "no subjects were assigned to it (too few subjects for --split-fractions)"
        elif not videos:
            why = "none of its videos was converted yet (--limit)"
        elif failed == len(videos):
            why = f"all its {failed} videos failed (listed below)"
        else:
            why = (f"its {len(videos) - failed} converted videos are shorter than one clip"
                   + (f" and {failed} failed" if failed else "") + " (see --clip-length)")
        lines.append(f"WARNING: split {s!r} has 0 clips: {why}")
    return lines


def summary_text(m: dict) -> str:
    """Human-readable summary: totals, splits, failures with reasons, sanity flags."""
    c = m["counts"]
    lines = [f"converted {c['ok']} of {c['videos']} videos into {c['clips']} clips; "
             f"{c['failed']} failed"]
    for s in SPLITS:
        sp = m["splits"][s]
        lines.append(f"  {s:<10} {len(sp['subjects']):4d} subjects {sp['clips']:6d} clips "
                     f"{len(sp['shards']):4d} shards")
    lines += empty_split_warnings(m)
    ok = [v for v in m["videos"] if v["status"] == "ok"]
    if ok:
        rates = [v["detection_rate"] for v in ok if v.get("detection_rate") is not None]
        if rates:
            lines.append(f"face found in {100 * min(rates):.1f}%–{100 * max(rates):.1f}% of "
                         "detection frames per video")
        nir = collections.Counter(v["nir_box"].split(" (")[0].split(",")[0]
                                  for v in ok if v.get("nir_box"))
        if nir:
            lines.append("NIR crops: " + "; ".join(
                f"{k} box ({n} videos)" for k, n in sorted(nir.items()))
                + " (see manifest.json nir_box per video)")
        sources = collections.Counter()
        for v in ok:
            sources.update(v.get("hr_sources") or {})
        lines.append("clip HR from: " + "; ".join(f"{k} ({n} clips)" for k, n in sources.items()))
    flagged = [v for v in ok if v.get("sanity", {}).get("status") == "disagree"]
    if flagged:
        lines.append(f"{len(flagged)} videos where POS HR and label HR disagree:")
        lines += [f"  {v['path']}: POS {v['sanity']['pos_hr']} bpm vs label "
                  f"{v['sanity']['label_hr']} bpm" for v in flagged]
    failed = [v for v in m["videos"] if v["status"] != "ok"]
    if failed:
        lines.append(f"{len(failed)} FAILED videos:")
        lines += [f"  {v['path']}: {v['reason']}" for v in failed]
    return "\n".join(lines) + "\n"
