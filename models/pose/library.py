"""Named target poses chosen by text, and pose JSON files.

The poses live in ``library_poses.json`` next to this file (OpenPose-18 in a unit square, one
common scale so a sitting person is smaller than a standing one). :func:`find_pose` matches free
text ("raise both arms") to a pose ("arms raised") through each pose's aliases, after folding
word forms and synonyms ("raise", "raised", "lift", "up" are one word here).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..common.files import unique_path
from .keypoints import NUM_BODY, Person, PoseFrame, parse_pose_keypoint, to_pose_keypoint
from .parts import torso_scale

LIBRARY_FILE = Path(__file__).with_name("library_poses.json")

# Word -> canonical token. Anything not listed is lower-cased and crudely de-suffixed.
_SYNONYMS = {
    "raise": "up",
    "raised": "up",
    "raising": "up",
    "raises": "up",
    "lift": "up",
    "lifted": "up",
    "lifting": "up",
    "up": "up",
    "high": "up",
    "above": "up",
    "overhead": "up",
    "air": "up",
    "arm": "arm",
    "arms": "arm",
    "hand": "hand",
    "hands": "hand",
    "sit": "sit",
    "sitting": "sit",
    "seated": "sit",
    "sits": "sit",
    "sat": "sit",
    "chair": "sit",
    "stand": "stand",
    "standing": "stand",
    "stands": "stand",
    "stood": "stand",
    "walk": "walk",
    "walking": "walk",
    "walks": "walk",
    "stroll": "walk",
    "strolling": "walk",
    "stride": "walk",
    "run": "run",
    "running": "run",
    "runs": "run",
    "jog": "run",
    "jogging": "run",
    "sprint": "run",
    "sprinting": "run",
    "kneel": "kneel",
    "kneeling": "kneel",
    "knees": "kneel",
    "knee": "kneel",
    "knelt": "kneel",
    "wave": "wave",
    "waving": "wave",
    "waves": "wave",
    "hello": "wave",
    "hi": "wave",
    "greet": "wave",
    "greeting": "wave",
    "squat": "squat",
    "squatting": "squat",
    "crouch": "squat",
    "crouching": "squat",
    "jump": "jump",
    "jumping": "jump",
    "jumps": "jump",
    "leap": "jump",
    "leaping": "jump",
    "point": "point",
    "pointing": "point",
    "points": "point",
    "cross": "cross",
    "crossed": "cross",
    "crossing": "cross",
    "fold": "cross",
    "folded": "cross",
    "hip": "hip",
    "hips": "hip",
    "waist": "hip",
    "lie": "lie",
    "lying": "lie",
    "laying": "lie",
    "lay": "lie",
    "lies": "lie",
    "reclining": "lie",
    "sleeping": "lie",
    "tpose": "tpose",
    "t": "tpose",
    "spread": "out",
    "outstretched": "out",
    "sideways": "out",
    "out": "out",
}
_STOPWORDS = {
    "a",
    "an",
    "the",
    "both",
    "two",
    "with",
    "his",
    "her",
    "their",
    "my",
    "in",
    "on",
    "of",
    "and",
    "is",
    "are",
    "while",
    "someone",
    "person",
    "man",
    "woman",
    "people",
    "pose",
    "posing",
    "make",
    "him",
    "them",
    "to",
    "be",
    "into",
    "like",
    "doing",
    "do",
    "at",
    "from",
    "that",
    "this",
    "please",
}


class PoseLibraryError(ValueError):
    """No library pose matches the text; the message lists the names."""


PoseLibraryError.__module__ = (
    "poselab"  # shown by ComfyUI as poselab.PoseLibraryError, not a file path
)


def _token(word: str) -> str:
    if word in _SYNONYMS:
        return _SYNONYMS[word]
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            return _SYNONYMS.get(stem, stem)
    return word


def normalize_text(text: str) -> tuple[str, ...]:
    """Canonical tokens of a phrase, stopwords dropped ("Raise both arms!" -> ('up', 'arm'))."""
    words = re.findall(
        r"[a-z]+", text.lower().replace("t-pose", "tpose").replace("t pose", "tpose")
    )
    return tuple(_token(w) for w in words if w not in _STOPWORDS)


@lru_cache(maxsize=1)
def _load_library() -> dict:
    doc = json.loads(LIBRARY_FILE.read_text(encoding="utf-8"))
    poses = {}
    for name, entry in doc["poses"].items():
        body = np.asarray(entry["body"], np.float32)
        if body.shape != (NUM_BODY, 3):
            raise ValueError(
                f"{LIBRARY_FILE}: pose {name!r} must have 18 (x, y, c) rows, got {body.shape}"
            )
        poses[name] = {"aliases": tuple(entry.get("aliases", ())), "body": body}
    return poses


def pose_names() -> list[str]:
    return list(_load_library())


def _similarity(query: tuple[str, ...], phrase: str) -> float:
    cand = normalize_text(phrase)
    if not query or not cand:
        return 0.0
    q, c = set(query), set(cand)
    jaccard = len(q & c) / len(q | c)
    # Character similarity catches typos ("kneling") that token matching misses.
    chars = difflib.SequenceMatcher(None, " ".join(sorted(q)), " ".join(sorted(c))).ratio()
    return max(jaccard, 0.85 * chars)


def match_scores(text: str) -> list[tuple[str, float]]:
    """Every library pose with its best similarity to ``text`` (name or any alias), best first."""
    query = normalize_text(text)
    scores = []
    for name, entry in _load_library().items():
        best = max(_similarity(query, phrase) for phrase in (name, *entry["aliases"]))
        scores.append((name, best))
    return sorted(scores, key=lambda kv: -kv[1])


def find_pose(text: str, min_score: float = 0.5) -> str:
    """The library pose name that best matches free text, or :class:`PoseLibraryError`."""
    if not isinstance(text, str) or not text.strip():
        raise PoseLibraryError(
            f"describe the pose in words, e.g. one of: {', '.join(pose_names())}"
        )
    key = text.strip().lower()
    if key in _load_library():
        return key
    name, score = match_scores(text)[0]
    if score < min_score:
        raise PoseLibraryError(
            f"no library pose matches {text!r} (closest: {name!r}); use one of: {', '.join(pose_names())}"
        )
    return name


def library_body(name: str) -> np.ndarray:
    """The named pose's OpenPose-18 body in unit-square coordinates (copy)."""
    return _load_library()[find_pose(name)]["body"].copy()


def get_pose(text: str, width: int, height: int) -> PoseFrame:
    """The best-matching library pose on a ``width`` x ``height`` canvas.

    The unit square is scaled uniformly by the short side and centred, so the person keeps
    their proportions on any aspect ratio.
    """
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas size must be positive, got {width}x{height}")
    body = library_body(text)
    s = min(width, height)
    present = body[:, 2] > 0
    body[present, 0] = (body[present, 0] - 0.5) * s + (width - 1) / 2.0
    body[present, 1] = (body[present, 1] - 0.5) * s + (height - 1) / 2.0
    return PoseFrame(width, height, [Person(body=body)])


def fit_to_person(body, reference) -> np.ndarray:
    """Move and scale ``body`` (uniformly) so its torso scale and torso centre match ``reference``'s
    (a similarity: the library pose placed where the source person stands, at their size)."""
    body = np.asarray(body, np.float32).copy()
    ref = np.asarray(reference, np.float32)
    both = (body[:, 2] > 0) & (ref[:, 2] > 0)
    st_b, st_r = torso_scale(body * both[:, None]), torso_scale(ref * both[:, None])
    if st_b <= 0 or st_r <= 0:
        raise ValueError(
            "cannot fit the pose to the reference person: it needs at least two body joints in common (shoulders and hips are best)"
        )
    torso = [1, 2, 5, 8, 11]  # neck, shoulders, hips
    idx = [j for j in torso if both[j]] or list(np.flatnonzero(both))
    cb, cr = body[idx, :2].mean(0), ref[idx, :2].mean(0)
    present = body[:, 2] > 0
    body[present, :2] = (body[present, :2] - cb) * (st_r / st_b) + cr
    return body


# ---------------------------------------------------------------------------- pose JSON files


def load_pose_json(path) -> list[PoseFrame]:
    """Frames from a POSE_KEYPOINT JSON file (controlnet_aux / OpenPose style)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose JSON file not found: {path}")
    return parse_pose_keypoint(path.read_text(encoding="utf-8"))


def save_pose_json(frames, path, indent: int | None = None) -> Path:
    """Write frames as POSE_KEYPOINT JSON; returns the path written.

    Never overwrites: an existing name gets a counter suffix. The file appears atomically (a
    temp file in the same folder is hard-linked into place, which fails rather than replace a
    file created meanwhile; then the next free name is tried).
    """
    frames = list(frames)
    if frames and not isinstance(frames[0], PoseFrame):
        frames = parse_pose_keypoint(frames)
    text = json.dumps(to_pose_keypoint(frames), indent=indent)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        base = re.sub(r"_\d{4}$", "", path.stem)  # saving pose_0001.json again gives pose_0002.json
        for _ in range(1000):
            target = unique_path(path, digits=4, stem=base)
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                continue  # somebody took the name between the check and the link
            except OSError:
                # Filesystems without hard links: a checked replace (tiny race window).
                if not target.exists():
                    os.replace(tmp, target)
                    return target
        raise OSError(f"could not find a free file name next to {path}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
