"""Procedurally rendered people in pairs of poses, with exact OpenPose-18 keypoints.

The ground truth for pose transfer: the same person (body proportions, clothes, hair, skin)
and the same background, drawn in two poses, so a generated target can be compared with the
true one pixel by pixel. Also the paired data of the instruction-edit (IP2P) trainer: each
pair comes with a sentence describing the change ("make the person raise both arms").

A person is a 2-D articulated figure seen from the front: capsules for limbs and neck, a
quadrilateral torso, ellipses for head, hair and feet. Joint angles come from a set of named
poses (standing, arms raised, waving, walking, sitting, ...) jittered per sample;
foreshortening (a scale on a segment) stands in for motion in depth (walking, sitting).
Clothes are textured in each part's own frame (stripes, checks, dots follow the limb) with
cylinder shading, so appearance moves with the body as in a photo. Everything is drawn at 2x
and area-downsampled (anti-aliasing), with NumPy/OpenCV only; deterministic from a seed.

Conventions: image coordinates, x right, y down; the person's right side is on the image's
left (a person facing the camera), like OpenPose's labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .keypoints import NUM_BODY, J

SUPERSAMPLE = 2

# Named poses. Angles in degrees, measured from "pointing straight down", positive = towards
# the person's own outside (so one table serves both sides). The forearm/shin angle is
# absolute (not relative to the upper segment). "scale_*" < 1 foreshortens a segment (it
# points towards/away from the camera). "drop" lowers the pelvis (sitting, squatting) as a
# fraction of the leg length, so the figure is placed consistently.
_DOWN = dict(r_upper=8, r_fore=5, l_upper=8, l_fore=5, r_thigh=4, r_shin=2, l_thigh=4, l_shin=2)

POSES: dict[str, dict] = {
    "standing": dict(_DOWN),
    "arms_raised": dict(_DOWN, r_upper=165, r_fore=172, l_upper=165, l_fore=172),
    "right_arm_raised": dict(_DOWN, r_upper=165, r_fore=172),
    "left_arm_raised": dict(_DOWN, l_upper=165, l_fore=172),
    "arms_out": dict(_DOWN, r_upper=90, r_fore=90, l_upper=90, l_fore=90),
    "waving_right": dict(_DOWN, r_upper=100, r_fore=170),
    "waving_left": dict(_DOWN, l_upper=100, l_fore=170),
    "hands_on_hips": dict(
        _DOWN, r_upper=40, r_fore=-55, l_upper=40, l_fore=-55, scale_r_fore=0.85, scale_l_fore=0.85
    ),
    "hands_on_head": dict(
        _DOWN,
        r_upper=140,
        r_fore=-125,
        l_upper=140,
        l_fore=-125,
        scale_r_fore=0.9,
        scale_l_fore=0.9,
    ),
    "pointing_right": dict(_DOWN, r_upper=88, r_fore=88),
    "walking": dict(
        _DOWN,
        r_upper=18,
        r_fore=10,
        l_upper=-4,
        l_fore=-8,
        r_thigh=9,
        r_shin=4,
        l_thigh=-1,
        l_shin=6,
        scale_l_thigh=0.88,
        scale_l_shin=0.95,
        scale_l_upper=0.9,
    ),
    "sitting": dict(
        _DOWN,
        r_upper=12,
        r_fore=-25,
        l_upper=12,
        l_fore=-25,
        scale_r_fore=0.75,
        scale_l_fore=0.75,
        r_thigh=22,
        r_shin=3,
        l_thigh=22,
        l_shin=3,
        scale_r_thigh=0.38,
        scale_l_thigh=0.38,
        drop=0.55,
    ),
    "squatting": dict(
        _DOWN,
        r_upper=60,
        r_fore=75,
        l_upper=60,
        l_fore=75,
        scale_r_upper=0.8,
        scale_l_upper=0.8,
        r_thigh=58,
        r_shin=-8,
        l_thigh=58,
        l_shin=-8,
        scale_r_thigh=0.7,
        scale_l_thigh=0.7,
        drop=0.45,
    ),
    "jumping_jack": dict(
        _DOWN,
        r_upper=135,
        r_fore=145,
        l_upper=135,
        l_fore=145,
        r_thigh=22,
        r_shin=22,
        l_thigh=22,
        l_shin=22,
    ),
}

# Verb phrases for the instruction text; the target pose decides the sentence.
POSE_PHRASES: dict[str, tuple[str, ...]] = {
    "standing": ("stand up straight with the arms down", "lower both arms and stand still"),
    "arms_raised": ("raise both arms", "lift both arms above the head"),
    "right_arm_raised": ("raise the right arm", "lift the right arm up"),
    "left_arm_raised": ("raise the left arm", "lift the left arm up"),
    "arms_out": ("stretch both arms out to the sides", "hold both arms out horizontally"),
    "waving_right": ("wave with the right hand", "raise the right hand to wave"),
    "waving_left": ("wave with the left hand", "raise the left hand to wave"),
    "hands_on_hips": ("put the hands on the hips", "stand with hands on hips"),
    "hands_on_head": ("put both hands on the head", "place the hands on top of the head"),
    "pointing_right": (
        "point to the side with the right arm",
        "stretch the right arm out to point",
    ),
    "walking": ("walk towards the camera", "take a step forward"),
    "sitting": ("sit down", "sit on a chair"),
    "squatting": ("squat down", "crouch with bent knees"),
    "jumping_jack": ("do a jumping jack", "spread the arms and legs wide"),
}
_TEMPLATES = ("make the person {p}", "have the person {p}", "{p}")

SKIN_TONES = (
    (255, 224, 196),
    (241, 194, 155),
    (224, 172, 125),
    (198, 134, 86),
    (141, 85, 54),
    (92, 58, 38),
)
HAIR_COLOURS = (
    (20, 16, 14),
    (70, 45, 25),
    (120, 80, 40),
    (200, 165, 95),
    (150, 60, 30),
    (160, 160, 160),
)
TEXTURES = ("solid", "stripes", "checks", "dots", "across")
BACKGROUNDS = ("flat", "gradient", "floor", "noise", "stripes")


@dataclass
class Appearance:
    """Everything about a person that stays fixed across the two poses of a pair."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str  # "short", "long", "bald"
    shirt: tuple[int, int, int]
    shirt2: tuple[int, int, int]
    shirt_texture: str
    long_sleeves: bool
    trousers: tuple[int, int, int]
    trousers2: tuple[int, int, int]
    trousers_texture: str
    shorts: bool
    shoes: tuple[int, int, int]
    texture_period: float  # fraction of person height
    # proportions (fractions of the person's height)
    shoulder_half: float
    hip_half: float
    torso: float
    neck: float
    head_w: float
    head_h: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    arm_r: float
    leg_r: float


@dataclass
class Skeleton:
    """Joint positions in body units (person height 1, pelvis at the origin) plus drawing extras."""

    joints: np.ndarray  # (18, 2)
    head_centre: np.ndarray
    head_angle: float  # radians, head tilt
    hands: tuple[np.ndarray, np.ndarray]  # (right, left) hand centres
    feet: tuple[np.ndarray, np.ndarray]
    extras: dict = field(default_factory=dict)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 240), rng.integers(50, 240)]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def random_appearance(rng: np.random.Generator) -> Appearance:
    u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
    return Appearance(
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))],
        hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))],
        hair_style=("short", "long", "bald")[rng.choice(3, p=[0.5, 0.4, 0.1])],
        shirt=_colour(rng),
        shirt2=_colour(rng),
        shirt_texture=TEXTURES[rng.integers(len(TEXTURES))],
        long_sleeves=bool(rng.random() < 0.5),
        trousers=_colour(rng),
        trousers2=_colour(rng),
        trousers_texture=TEXTURES[rng.integers(len(TEXTURES))],
        shorts=bool(rng.random() < 0.25),
        shoes=_colour(rng),
        texture_period=u(0.03, 0.07),
        shoulder_half=u(0.095, 0.125),
        hip_half=u(0.06, 0.08),
        torso=u(0.28, 0.32),
        neck=u(0.04, 0.055),
        head_w=u(0.05, 0.06),
        head_h=u(0.062, 0.072),
        upper_arm=u(0.16, 0.18),
        forearm=u(0.14, 0.16),
        thigh=u(0.23, 0.26),
        shin=u(0.22, 0.25),
        arm_r=u(0.026, 0.036),
        leg_r=u(0.036, 0.05),
    )


def _direction(angle_deg: float, side: int) -> np.ndarray:
    """Unit vector for an angle from straight down, positive towards the side's outside
    (side -1 = the person's right = image left)."""
    a = math.radians(angle_deg)
    return np.array([side * math.sin(a), math.cos(a)])


def jitter_pose(
    name: str, rng: np.random.Generator, amount: float = 6.0, lean: bool = True
) -> dict:
    """A named pose with every angle moved by up to ``amount`` degrees and a slight lean."""
    if name not in POSES:
        raise ValueError(f"unknown pose {name!r}; choose one of {sorted(POSES)}")
    pose = dict(POSES[name])
    for key in list(pose):
        if key.startswith(("r_", "l_")):
            pose[key] = pose[key] + float(rng.uniform(-amount, amount))
    lean_deg = float(rng.uniform(-amount, amount)) * 0.6
    pose["lean"] = lean_deg if lean else 0.0
    pose["head_tilt"] = float(rng.uniform(-amount, amount))
    return pose


# Poses that keep the pelvis where standing has it (no sitting/squatting drop).
STILL_TORSO_POSES = tuple(n for n, p in POSES.items() if not p.get("drop"))


def skeleton(app: Appearance, pose: dict) -> Skeleton:
    """Forward kinematics: OpenPose-18 joints (body units, pelvis at 0) for a pose dict."""
    joints = np.zeros((NUM_BODY, 2))
    sc = lambda key: float(pose.get("scale_" + key, 1.0))  # noqa: E731
    drop = float(pose.get("drop", 0.0)) * (app.thigh + app.shin)
    pelvis = np.array([0.0, drop])
    lean = math.radians(pose.get("lean", 0.0))
    rot = np.array([[math.cos(lean), -math.sin(lean)], [math.sin(lean), math.cos(lean)]])
    up = lambda v: pelvis + rot @ np.asarray(v, float)  # noqa: E731  (upper body leans about the pelvis)

    neck = up([0.0, -app.torso])
    joints[J["neck"]] = neck
    joints[J["right_shoulder"]] = up([-app.shoulder_half, -app.torso + 0.01])
    joints[J["left_shoulder"]] = up([app.shoulder_half, -app.torso + 0.01])
    joints[J["right_hip"]] = pelvis + [-app.hip_half, 0.0]
    joints[J["left_hip"]] = pelvis + [app.hip_half, 0.0]

    hands, feet = [], []
    for side, s in ((-1, "r"), (1, "l")):
        prefix = "right" if side < 0 else "left"
        sho = joints[J[f"{prefix}_shoulder"]]
        elbow = sho + rot @ (
            _direction(pose[f"{s}_upper"], side) * app.upper_arm * sc(f"{s}_upper")
        )
        fdir = rot @ _direction(pose[f"{s}_fore"], side)
        wrist = elbow + fdir * app.forearm * sc(f"{s}_fore")
        joints[J[f"{prefix}_elbow"]], joints[J[f"{prefix}_wrist"]] = elbow, wrist
        hands.append(wrist + fdir * app.arm_r * 1.3)
        hip = joints[J[f"{prefix}_hip"]]
        knee = hip + _direction(pose[f"{s}_thigh"], side) * app.thigh * sc(f"{s}_thigh")
        ankle = knee + _direction(pose[f"{s}_shin"], side) * app.shin * sc(f"{s}_shin")
        joints[J[f"{prefix}_knee"]], joints[J[f"{prefix}_ankle"]] = knee, ankle
        feet.append(ankle + np.array([side * app.leg_r * 0.6, app.leg_r * 0.9]))

    tilt = math.radians(pose.get("head_tilt", 0.0)) + lean
    hrot = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
    head_centre = neck + rot @ np.array([0.0, -(app.neck + app.head_h * 0.85)])
    face = lambda dx, dy: head_centre + hrot @ np.array([dx * app.head_w, dy * app.head_h])  # noqa: E731
    joints[J["nose"]] = face(0.0, 0.15)
    joints[J["right_eye"]] = face(-0.38, -0.12)
    joints[J["left_eye"]] = face(0.38, -0.12)
    joints[J["right_ear"]] = face(-0.98, 0.0)
    joints[J["left_ear"]] = face(0.98, 0.0)
    return Skeleton(
        joints=joints,
        head_centre=head_centre,
        head_angle=tilt,
        hands=tuple(hands),
        feet=tuple(feet),
    )


def _extent(app: Appearance, sk: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of everything drawn (joints grown by the thickest part, the head, hair)."""
    pts = np.concatenate([sk.joints, np.stack(sk.hands), np.stack(sk.feet)])
    pad = max(app.leg_r, app.arm_r) * 1.5
    lo = pts.min(0) - pad
    hi = pts.max(0) + pad
    head_top = sk.head_centre[1] - app.head_h * 1.15
    lo[1] = min(lo[1], head_top)
    return lo, hi


# ----------------------------------------------------------------------------------- rendering


def _texture(kind: str, c1, c2, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """RGB float colours ``(..., 3)`` of a pattern in a part's own frame (u along, v across)."""
    c1 = np.asarray(c1, np.float32)
    c2 = np.asarray(c2, np.float32)
    if kind == "solid":
        sel = np.zeros_like(u, bool)
    elif kind == "stripes":
        sel = (np.floor(u / period) % 2).astype(bool)
    elif kind == "across":
        sel = (np.floor(v / (period * 0.7)) % 2).astype(bool)
    elif kind == "checks":
        sel = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(bool)
    elif kind == "dots":
        du = (u / period) % 1.0 - 0.5
        dv = (v / period) % 1.0 - 0.5
        sel = du * du + dv * dv < 0.08
    else:
        raise ValueError(f"unknown texture {kind!r}")
    return np.where(sel[..., None], c2, c1)


class _Canvas:
    """Supersampled RGB canvas plus a person mask; parts are painted in order (painter's algorithm)."""

    def __init__(self, background: np.ndarray, scale: float, offset: np.ndarray):
        self.img = cv2.resize(
            background, None, fx=SUPERSAMPLE, fy=SUPERSAMPLE, interpolation=cv2.INTER_NEAREST
        ).astype(np.float32)
        self.mask = np.zeros(self.img.shape[:2], np.uint8)
        self.out_scale, self.out_offset = float(scale), np.asarray(offset, float)
        self.scale = scale * SUPERSAMPLE

    def out_px(self, p) -> np.ndarray:
        """Body units -> output pixel coordinates (integer = pixel centre)."""
        return np.asarray(p, float) * self.out_scale + self.out_offset

    def px(self, p) -> np.ndarray:
        # output pixel x spans supersampled pixels [S*x - (S-1)/2 .. ], centre S*x + (S-1)/2
        return self.out_px(p) * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2.0

    def _paint(self, shape_mask: np.ndarray, colour_fn, origin, axis) -> None:
        ys, xs = np.nonzero(shape_mask)
        if len(ys) == 0:
            return
        # part-frame coordinates in body units (so textures scale with the person)
        d = np.stack([xs, ys], 1).astype(np.float32) - self.px(origin)
        axis = np.asarray(axis, float)
        n = float(np.hypot(*axis)) or 1.0
        a = axis / n
        u = (d @ a) / self.scale
        v = (d @ np.array([-a[1], a[0]])) / self.scale
        self.img[ys, xs] = colour_fn(u.astype(np.float32), v.astype(np.float32))
        self.mask[ys, xs] = 1

    def _blank(self) -> np.ndarray:
        return np.zeros(self.mask.shape, np.uint8)

    def capsule(self, a, b, radius: float, colour_fn, shade: bool = True) -> None:
        m = self._blank()
        pa, pb = self.px(a), self.px(b)
        r = max(int(round(radius * self.scale)), 1)
        cv2.line(
            m,
            tuple(np.round(pa).astype(int)),
            tuple(np.round(pb).astype(int)),
            1,
            thickness=2 * r,
            lineType=cv2.LINE_8,
        )
        cv2.circle(m, tuple(np.round(pa).astype(int)), r, 1, -1)
        cv2.circle(m, tuple(np.round(pb).astype(int)), r, 1, -1)
        self._paint(m, _shaded(colour_fn, radius) if shade else colour_fn, a, np.subtract(b, a))

    def polygon(self, pts, colour_fn, origin, axis, half_width: float) -> None:
        m = self._blank()
        cv2.fillPoly(m, [np.round(self.px(pts)).astype(np.int32).reshape(-1, 1, 2)], 1)
        self._paint(m, _shaded(colour_fn, half_width), origin, axis)

    def ellipse(self, centre, axes, angle: float, colour_fn, shade: bool = True) -> None:
        m = self._blank()
        c = tuple(np.round(self.px(centre)).astype(int))
        ax = (max(int(round(axes[0] * self.scale)), 1), max(int(round(axes[1] * self.scale)), 1))
        cv2.ellipse(m, c, ax, math.degrees(angle), 0, 360, 1, -1)
        down = np.array([-math.sin(angle), math.cos(angle)])
        self._paint(m, _shaded(colour_fn, axes[0]) if shade else colour_fn, centre, down)

    def result(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        h, w = size
        img = cv2.resize(self.img, (w, h), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(self.mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8), mask


def _shaded(colour_fn, half_width: float):
    """Cylinder-like shading across a part: darker towards its edges."""

    def fn(u, v):
        t = np.clip(np.abs(v) / max(half_width, 1e-6), 0, 1)
        return colour_fn(u, v) * (1.0 - 0.35 * t * t)[:, None]

    return fn


def _solid(c):
    arr = np.asarray(c, np.float32)
    return lambda u, v: np.broadcast_to(arr, u.shape + (3,)).copy()


def _pattern(kind, c1, c2, period):
    return lambda u, v: _texture(kind, c1, c2, u, v, period)


def render_background(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    c1 = np.asarray(_colour(rng), np.float32)
    c2 = np.asarray(_colour(rng), np.float32)
    if kind == "flat":
        img = np.broadcast_to(c1, (h, w, 3))
    elif kind == "gradient":
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(c1 * (1 - t) + c2 * t, (h, w, 3))
    elif kind == "floor":
        horizon = int(h * rng.uniform(0.55, 0.8))
        img = np.empty((h, w, 3), np.float32)
        img[:horizon] = c1
        img[horizon:] = c2
    elif kind == "noise":
        small = rng.random((max(h // 12, 2), max(w // 12, 2), 1)).astype(np.float32)
        t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[..., None].clip(0, 1)
        img = c1 * (1 - t) + c2 * t
    elif kind == "stripes":
        period = max(int(w * rng.uniform(0.08, 0.2)), 2)
        sel = ((np.arange(w) // period) % 2).astype(bool)[None, :, None]
        img = np.where(sel, c1, c2 * 0.5 + c1 * 0.5)
        img = np.broadcast_to(img, (h, w, 3))
    else:
        raise ValueError(f"unknown background {kind!r}; choose one of {BACKGROUNDS}")
    return np.ascontiguousarray(img, dtype=np.float32)


def render_person(
    app: Appearance, sk: Skeleton, background: np.ndarray, scale: float, offset: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw a person on ``background`` (float RGB, H x W). Returns ``(image uint8 (H, W, 3),
    person mask float32 (H, W), body (18, 3) keypoints in pixels)``."""
    h, w = background.shape[:2]
    cv = _Canvas(background, scale, offset)
    jt = sk.joints
    per = app.texture_period
    shirt = _pattern(app.shirt_texture, app.shirt, app.shirt2, per)
    trousers = _pattern(app.trousers_texture, app.trousers, app.trousers2, per)
    skin, hair, shoes = _solid(app.skin), _solid(app.hair), _solid(app.shoes)

    def seg(name_a, name_b):
        return jt[J[name_a]], jt[J[name_b]]

    # Long hair falls behind the shoulders: drawn first.
    if app.hair_style == "long":
        back = sk.head_centre + np.array([0.0, app.head_h * 1.3])
        cv.capsule(sk.head_centre, back, app.head_w * 1.1, hair)
    for side in ("right", "left"):
        foot = sk.feet[0 if side == "right" else 1]
        cv.ellipse(foot, (app.leg_r * 1.1, app.leg_r * 0.75), 0.0, shoes)
        cv.capsule(
            *seg(f"{side}_knee", f"{side}_ankle"),
            app.leg_r * 0.85,
            skin if app.shorts else trousers,
        )
        cv.capsule(*seg(f"{side}_hip", f"{side}_knee"), app.leg_r, trousers)
    # trouser seat between the hips
    hips = np.stack([jt[J["right_hip"]], jt[J["left_hip"]]])
    cv.capsule(hips[0], hips[1], app.leg_r, trousers)
    # torso: shoulders to hips, a little wider than the joints
    rs, ls, rh, lh = (
        jt[J[n]] for n in ("right_shoulder", "left_shoulder", "right_hip", "left_hip")
    )
    out = lambda p, q, k: p + (p - q) / max(np.hypot(*(p - q)), 1e-6) * k  # noqa: E731
    torso_pts = np.stack(
        [
            out(rs, ls, app.arm_r * 0.8),
            out(ls, rs, app.arm_r * 0.8),
            out(lh, rh, app.leg_r * 0.6),
            out(rh, lh, app.leg_r * 0.6),
        ]
    )
    neck = jt[J["neck"]]
    pelvis = (rh + lh) / 2
    cv.polygon(torso_pts, shirt, neck, pelvis - neck, app.shoulder_half + app.arm_r)
    cv.capsule(neck, sk.head_centre, app.head_w * 0.45, skin)
    # head: hair cap behind, face in front (bald: face only)
    a = sk.head_angle
    if app.hair_style != "bald":
        cap = sk.head_centre + np.array([math.sin(a), -math.cos(a)]) * app.head_h * 0.12
        cv.ellipse(cap, (app.head_w * 1.08, app.head_h * 1.05), a, hair)
    face_c = sk.head_centre + np.array([-math.sin(a), math.cos(a)]) * app.head_h * (
        0.1 if app.hair_style != "bald" else 0.0
    )
    cv.ellipse(face_c, (app.head_w * 0.95, app.head_h * 0.92), a, skin)
    eye_r = app.head_w * 0.12
    for eye in ("right_eye", "left_eye"):
        cv.ellipse(jt[J[eye]], (eye_r, eye_r), 0.0, _solid((30, 25, 25)), shade=False)
    cv.ellipse(
        jt[J["nose"]] + np.array([0, app.head_h * 0.35]),
        (app.head_w * 0.3, app.head_h * 0.06),
        a,
        _solid((150, 60, 60)),
        shade=False,
    )
    # arms last: in front of the torso
    for i, side in enumerate(("right", "left")):
        cv.capsule(*seg(f"{side}_shoulder", f"{side}_elbow"), app.arm_r, shirt)
        cv.capsule(
            *seg(f"{side}_elbow", f"{side}_wrist"),
            app.arm_r * 0.85,
            shirt if app.long_sleeves else skin,
        )
        cv.capsule(jt[J[f"{side}_wrist"]], sk.hands[i], app.arm_r * 0.9, skin)

    img, mask = cv.result((h, w))
    body = np.zeros((NUM_BODY, 3), np.float32)
    body[:, :2] = cv.out_px(jt)
    body[:, 2] = 1.0
    outside = (body[:, 0] < 0) | (body[:, 0] > w - 1) | (body[:, 1] < 0) | (body[:, 1] > h - 1)
    body[outside] = 0.0  # a joint off the canvas is missing, as a detector would report it
    return img, mask, body


# --------------------------------------------------------------------------------------- pairs


@dataclass
class SyntheticPair:
    source: np.ndarray  # uint8 (H, W, 3)
    target: np.ndarray
    source_body: np.ndarray  # (18, 3) pixels
    target_body: np.ndarray
    source_mask: np.ndarray  # float32 (H, W)
    target_mask: np.ndarray
    source_pose: str
    target_pose: str
    instruction: str
    background: str


def instruction_for(target_pose: str, rng: np.random.Generator) -> str:
    phrase = POSE_PHRASES[target_pose][rng.integers(len(POSE_PHRASES[target_pose]))]
    return _TEMPLATES[rng.integers(len(_TEMPLATES))].format(p=phrase)


def make_pair(
    seed: int,
    size: tuple[int, int] = (128, 64),
    source_pose: str | None = None,
    target_pose: str | None = None,
    poses: tuple[str, ...] | None = None,
    still_torso: bool = False,
) -> SyntheticPair:
    """One pair: the same person and background in two different poses. Deterministic in
    ``seed``. ``size=(height, width)``. Poses are drawn from ``poses`` (default: all) unless given.

    ``still_torso``: the torso does not move between the two poses (no lean, no sitting or
    squatting drop); only limbs and head do. The Deformable GAN sees the source background at
    full resolution only through the torso-warped skip connection, so this is the setting in
    which a shared background can be reproduced exactly (see tests/unit/test_posegan_acceptance.py)."""
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ValueError(f"synthetic images must be at least 16x16 pixels, got {h}x{w}")
    names = tuple(poses) if poses else (STILL_TORSO_POSES if still_torso else tuple(POSES))
    if still_torso and any(
        n not in STILL_TORSO_POSES
        for n in names + tuple(p for p in (source_pose, target_pose) if p)
    ):
        raise ValueError(
            f"still_torso pairs can only use poses without a pelvis drop: {STILL_TORSO_POSES}"
        )
    for n in names + tuple(p for p in (source_pose, target_pose) if p):
        if n not in POSES:
            raise ValueError(f"unknown pose {n!r}; choose from {sorted(POSES)}")
    rng = np.random.default_rng(int(seed))
    app = random_appearance(rng)
    src_name = source_pose or names[rng.integers(len(names))]
    others = [n for n in names if n != src_name] or list(names)
    tgt_name = target_pose or others[rng.integers(len(others))]
    sk_s = skeleton(app, jitter_pose(src_name, rng, lean=not still_torso))
    sk_t = skeleton(app, jitter_pose(tgt_name, rng, lean=not still_torso))

    # One placement for both poses (the camera does not move): fit the union of both extents.
    lo_s, hi_s = _extent(app, sk_s)
    lo_t, hi_t = _extent(app, sk_t)
    lo, hi = np.minimum(lo_s, lo_t), np.maximum(hi_s, hi_t)
    span = hi - lo
    scale = min(0.94 * h / span[1], 0.94 * w / span[0]) * float(rng.uniform(0.85, 1.0))
    free = np.array([w, h]) - span * scale
    offset = -lo * scale + free * np.array([rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.9)])

    bg_kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    bg = render_background(bg_kind, (h, w), rng)
    src, src_mask, src_body = render_person(app, sk_s, bg, scale, offset)
    tgt, tgt_mask, tgt_body = render_person(app, sk_t, bg, scale, offset)
    return SyntheticPair(
        source=src,
        target=tgt,
        source_body=src_body,
        target_body=tgt_body,
        source_mask=src_mask,
        target_mask=tgt_mask,
        source_pose=src_name,
        target_pose=tgt_name,
        instruction=instruction_for(tgt_name, rng),
        background=bg_kind,
    )


def make_pairs(
    count: int,
    seed: int = 0,
    size: tuple[int, int] = (128, 64),
    poses=None,
    still_torso: bool = False,
) -> list[SyntheticPair]:
    """``count`` pairs with seeds ``seed, seed+1, ...`` (each pair reproducible on its own)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return [
        make_pair(seed + i, size, poses=poses, still_torso=still_torso) for i in range(int(count))
    ]
