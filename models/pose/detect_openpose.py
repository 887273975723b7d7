"""OpenPose (body, hands, face) through controlnet-aux, from weight files the user provides.

controlnet-aux's own loaders call ``torch.load`` on whatever path they get and can fetch from
the Hugging Face hub; we build its networks here instead and load the state dicts with
``weights_only=True`` (or from ``.safetensors``), from paths the caller resolved. The files are
the usual ``lllyasviel/Annotators`` ones: ``body_pose_model.pth``, ``hand_pose_model.pth``,
``facenet.pth``. Body and hand files store keys without the first component of the network's
names (``conv1_1.weight`` for ``model0.conv1_1.weight``); ``util.transfer`` maps them back.

controlnet-aux returns body points normalised to the image it ran on; we run it on an image
with the original aspect ratio (no rounding to multiples of 64) so normalised coordinates
scale straight back to the caller's pixels.
"""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import torch

from ..common.files import atomic_write
from ..common.images import to_rgb_uint8
from .keypoints import NUM_BODY, NUM_FACE, NUM_HAND, Person, PoseFrame

BODY_FILE = "body_pose_model.pth"
HAND_FILE = "hand_pose_model.pth"
FACE_FILE = "facenet.pth"
MIN_SIDE = 16

_LOCK = threading.Lock()
_CACHE: dict[tuple, object] = {}


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A plain tensor dict from ``.safetensors`` or a ``torch.save``d dict (loaded weights-only)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"OpenPose weight file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path} is not a state dict of tensors: use the OpenPose weights from lllyasviel/Annotators"
        )
    return state


def _load_net(net: torch.nn.Module, path: str, strip_first: bool) -> torch.nn.Module:
    state = load_state_dict(path)
    if strip_first:  # what controlnet_aux.open_pose.util.transfer does
        wanted = {k: ".".join(k.split(".")[1:]) for k in net.state_dict()}
    else:
        wanted = {k: k for k in net.state_dict()}
    missing = [src for src in wanted.values() if src not in state]
    if missing:
        raise ValueError(
            f"{os.path.basename(path)} does not fit this OpenPose network ({len(missing)} missing tensors, e.g. "
            f"{missing[0]!r}): check that the body, hand and face files are not swapped"
        )
    net.load_state_dict(
        {k: state[src] for k, src in wanted.items()}
    )  # fp16 files are cast to fp32 here
    return net.float().eval()


def _build(body_path: str, hand_path: str | None, face_path: str | None):
    from controlnet_aux.open_pose import OpenposeDetector
    from controlnet_aux.open_pose.body import Body
    from controlnet_aux.open_pose.face import Face, FaceNet
    from controlnet_aux.open_pose.hand import Hand
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    body = Body.__new__(Body)  # skip Body.__init__'s unrestricted torch.load
    body.model = _load_net(bodypose_model(), body_path, strip_first=True)
    hand = face = None
    if hand_path:
        hand = Hand.__new__(Hand)
        hand.model = _load_net(handpose_model(), hand_path, strip_first=True)
    if face_path:
        # Face.__init__ also sets its inference parameters; give it a network instead of a file.
        face = Face.__new__(Face)
        from controlnet_aux.open_pose import face as face_module

        face.inference_size = face_module.params["inference_img_size"]
        face.sigma = face_module.params["gaussian_sigma"]
        face.threshold = face_module.params["heatmap_peak_thresh"]
        face.model = _load_net(FaceNet(), face_path, strip_first=False)
    return OpenposeDetector(body, hand, face)


def get_detector(body_path: str, hand_path: str | None = None, face_path: str | None = None):
    """A controlnet-aux ``OpenposeDetector`` for these files, cached while the files are unchanged."""
    for path in (body_path, hand_path, face_path):
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"OpenPose weight file not found: {path}")
    key = tuple((p, os.path.getmtime(p)) if p else None for p in (body_path, hand_path, face_path))
    with _LOCK:
        det = _CACHE.get(key)
        if det is None:
            _CACHE.clear()  # one set of ~500 MB of networks at a time
            det = _build(body_path, hand_path, face_path)
            _CACHE[key] = det
    return det


def _points(keypoints, count: int, w: float, h: float) -> np.ndarray | None:
    """controlnet-aux keypoints (normalised; None or negative = missing) to ``(count, 3)`` pixels."""
    if keypoints is None:
        return None
    out = np.zeros((count, 3), np.float32)
    for i, kp in enumerate(keypoints[:count]):
        if kp is None or kp.x < 0 or kp.y < 0:
            continue
        out[i] = (kp.x * w, kp.y * h, max(float(kp.score), 1e-3))
    return out


def results_to_people(
    results, width: int, height: int, max_people: int = 10, min_score: float = 0.0
) -> list[Person]:
    """controlnet-aux ``PoseResult`` list (normalised coordinates) to :class:`Person` objects in
    pixels of a ``width`` x ``height`` image, most confident first. Body joints at or below
    ``min_score`` are dropped; hand and face points carry no score in controlnet-aux (1.0)."""
    people = []
    for res in sorted(results, key=lambda r: -float(r.body.total_score)):
        body = _points(res.body.keypoints, NUM_BODY, width, height)
        body[body[:, 2] <= min_score] = 0.0
        if not (body[:, 2] > 0).any():
            continue
        people.append(
            Person(
                body=body,
                left_hand=_points(res.left_hand, NUM_HAND, width, height),
                right_hand=_points(res.right_hand, NUM_HAND, width, height),
                face=_points(res.face, NUM_FACE, width, height),
            )
        )
    return people[:max_people]


class OpenPoseDetector:
    """OpenPose body (+ hands, + face) on an RGB image; returns a :class:`PoseFrame` in its pixels."""

    def __init__(
        self,
        body_path: str,
        hand_path: str | None = None,
        face_path: str | None = None,
        detect_resolution: int = 512,
        min_score: float = 0.0,
    ):
        self.paths = (body_path, hand_path, face_path)
        self.detect_resolution = int(detect_resolution)
        self.min_score = float(min_score)

    def __call__(
        self, image_rgb: np.ndarray, max_people: int = 10, hands: bool = True, face: bool = True
    ) -> PoseFrame:
        rgb = to_rgb_uint8(image_rgb)
        h, w = rgb.shape[:2]
        frame = PoseFrame(width=w, height=h)
        if min(h, w) < MIN_SIDE or max_people <= 0:
            return frame
        body_path, hand_path, face_path = self.paths
        det = get_detector(body_path, hand_path if hands else None, face_path if face else None)
        k = self.detect_resolution / min(h, w)
        small = cv2.resize(
            rgb,
            (max(1, round(w * k)), max(1, round(h * k))),
            interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC,
        )
        with _LOCK, torch.inference_mode():
            results = det.detect_poses(
                small,
                include_hand=hands and det.hand_estimation is not None,
                include_face=face and det.face_estimation is not None,
            )
        frame.people = results_to_people(results, w, h, max_people, self.min_score)
        return frame


def write_random_weights(
    folder: str, dtype: torch.dtype = torch.float16, seed: int = 0
) -> dict[str, str]:
    """Random-weight OpenPose files in the real layout (for tests and benchmarks, no download).

    fp16 halves the files (~105 + 74 + 77 MB); the loaders cast back to fp32.
    """
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    gen = torch.Generator().manual_seed(seed)
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, build, strip in (
        (BODY_FILE, bodypose_model, True),
        (HAND_FILE, handpose_model, True),
        (FACE_FILE, FaceNet, False),
    ):
        with torch.device(
            "meta"
        ):  # shapes only: PyTorch's default init of ~130M weights takes a minute
            shapes = {k: v.shape for k, v in build().state_dict().items()}
        # Small weights keep activations tame, so the random heatmaps stay mostly below threshold.
        state = {
            (".".join(k.split(".")[1:]) if strip else k): (
                torch.randn(shape, generator=gen) * 0.02
            ).to(dtype)
            for k, shape in shapes.items()
        }
        paths[name] = str(
            atomic_write(os.path.join(folder, name), lambda tmp: torch.save(state, tmp))
        )
    return paths
