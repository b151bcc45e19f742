"""rPPG-Toolbox's UBFC-rPPG preprocessing, re-implemented step by step for timing comparisons.

What the toolbox does per video (`UBFCrPPGLoader.preprocess_dataset_subprocess` →
`BaseLoader.preprocess` → `save_multi_process`) with the settings of its UBFC-rPPG configs
(Haar face detection on the first frame only, box enlarged 1.5×, 72×72, data types
DiffNormalized + Standardized, label DiffNormalized, chunks of 180 frames):

1. read every frame with `cv2.VideoCapture`, BGR → RGB, all frames in one array;
2. read the PPG line of `ground_truth.txt`;
3. Haar cascade (`detectMultiScale` with OpenCV's defaults) on the first frame, the widest
   face kept, the box enlarged 1.5× about its centre (clipped at the top-left), int;
4. every frame cut to that box and resized to 72×72 with `cv2.INTER_AREA` into a float64
   array;
5. DiffNormalized (float32: `(x[t+1] − x[t]) / (x[t+1] + x[t] + 1e-7)`, divided by its std,
   a zero frame appended) and Standardized (float64 z-score), concatenated on channels
   (float64, 6 channels); the label diff-normalised;
6. cut into chunks of 180 frames (the remainder dropped), each chunk saved with `np.save`
   as `<subject>_input<i>.npy` and `<subject>_label<i>.npy`.

Written from the toolbox's description and code structure for benchmarking only; not used
by the converter. `python -m bench.toolbox --input RAW --output OUT` times it on a
UBFC-rPPG-layout tree (one process, videos one after another).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from data_prep.synth.video import read_avi

CHUNK = 180
SIZE = 72
BOX_COEF = 1.5


def face_box(frame: np.ndarray) -> list[int]:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = cascade.detectMultiScale(frame)
    if len(found) < 1:
        box = [0, 0, frame.shape[0], frame.shape[1]]
    else:
        box = list(found[int(np.argmax(found[:, 2]))])
    box = [max(0, box[0] - (BOX_COEF - 1) / 2 * box[2]),
           max(0, box[1] - (BOX_COEF - 1) / 2 * box[3]), BOX_COEF * box[2], BOX_COEF * box[3]]
    return [int(v) for v in box]


def crop_resize(frames: np.ndarray, box: list[int]) -> np.ndarray:
    x, y, w, h = box
    out = np.zeros((len(frames), SIZE, SIZE, 3))
    for i, frame in enumerate(frames):
        patch = frame[max(y, 0):min(y + h, frame.shape[0]), max(x, 0):min(x + w, frame.shape[1])]
        out[i] = cv2.resize(patch, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return out


def diff_normalized(x: np.ndarray) -> np.ndarray:
    d = np.zeros((len(x) - 1, *x.shape[1:]), dtype=np.float32)
    for j in range(len(x) - 1):
        d[j] = (x[j + 1] - x[j]) / (x[j + 1] + x[j] + 1e-7)
    d = d / np.std(d)
    d = np.append(d, np.zeros((1, *x.shape[1:]), dtype=np.float32), axis=0)
    d[np.isnan(d)] = 0
    return d


def standardized(x: np.ndarray) -> np.ndarray:
    x = x - np.mean(x)
    x = x / np.std(x)
    x[np.isnan(x)] = 0
    return x


def preprocess_video(folder: Path, out: Path) -> tuple[int, int]:
    """One UBFC-rPPG subject folder → its chunk files in `out`; returns (bytes written,
    frames saved)."""
    frames = read_avi(folder / "vid.avi")
    lines = (folder / "ground_truth.txt").read_text().split("\n")
    bvp = np.asarray([float(v) for v in lines[0].split()])
    faces = crop_resize(frames, face_box(frames[0]))
    data = np.concatenate([diff_normalized(faces.copy()), standardized(faces.copy())], axis=-1)
    diff = np.diff(bvp, axis=0)
    label = np.append(diff / np.std(diff), np.zeros(1), axis=0)
    label[np.isnan(label)] = 0
    n = len(data) // CHUNK
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for i in range(n):
        sl = slice(i * CHUNK, (i + 1) * CHUNK)
        for kind, arr in (("input", data[sl]), ("label", label[sl])):
            path = out / f"{folder.name}_{kind}{i}.npy"
            np.save(path, arr)
            written += path.stat().st_size
    return written, n * CHUNK


def run(raw: Path, out: Path) -> list[dict]:
    """Every `raw/subject*/` in turn: `[{video, seconds, bytes, frames_saved}]`."""
    results = []
    for folder in sorted(p.parent for p in Path(raw).glob("*/vid.avi")):
        t = time.perf_counter()
        size, frames = preprocess_video(folder, out)
        results.append({"video": folder.name, "seconds": time.perf_counter() - t,
                        "bytes": size, "frames_saved": frames})
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, required=True)
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args(argv)
    results = run(args.input, args.output)
    if not results:
        print(f"--input {args.input}: no */vid.avi found")
        return 1
    print(json.dumps({"bench": "toolbox", "videos": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
