"""Identity similarity: the insightface path with tiny random ONNX models in the real format
(an SCRFD-like detector with 9 outputs and an ArcFace-like 112x112 -> 512 recogniser, built
with onnx.helper at test time), and the MTCNN+HOG fallback on a real photo."""

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from poselab.models.metrics import identity as idm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tiny_insightface import build_arcface, build_scrfd  # noqa: E402

PHOTO = "051423444.jpg"  # MPII: one man, face visible


@pytest.fixture(scope="module")
def insightface_pack(tmp_path_factory):
    pack = tmp_path_factory.mktemp("insightface") / "tiny_pack"
    pack.mkdir()
    build_scrfd(pack / "det_tiny.onnx")
    build_arcface(pack / "w600k_tiny.onnx")
    return pack


@pytest.fixture(scope="module")
def photo(pose_data):
    img = cv2.imread(str(pose_data / PHOTO))
    assert img is not None, f"cannot read {pose_data / PHOTO}"
    return np.ascontiguousarray(cv2.resize(img, (640, 360))[:, :, ::-1])


def test_insightface_pack_embeds_and_compares(insightface_pack, photo):
    emb = idm.InsightFaceEmbedder(str(insightface_pack))
    assert emb.name == idm.INSIGHTFACE
    e, box = emb(photo)
    assert e is not None and e.shape == (512,) and np.isfinite(e).all()
    same = idm.identity_similarity(photo, photo, emb)
    assert same["embedder"] == "insightface-arcface" and same["similarity"] == pytest.approx(
        1.0, abs=1e-6
    )
    other = idm.identity_similarity(photo, np.ascontiguousarray(photo[:, ::-1]), emb)
    assert (
        other["similarity"] < 1 - 1e-6
    )  # a different crop gives a different (random-model) embedding
    assert other["note"] == ""


def test_insightface_pack_errors(tmp_path, insightface_pack):
    with pytest.raises(FileNotFoundError, match="insightface model pack"):
        idm.InsightFaceEmbedder(str(tmp_path))
    only_rec = tmp_path / "only_rec"
    only_rec.mkdir()
    build_arcface(only_rec / "rec.onnx")
    with pytest.raises(ValueError, match="lacks a detection model"):
        idm.InsightFaceEmbedder(str(only_rec))


def test_mtcnn_fallback_names_itself_and_handles_no_face(photo):
    emb = idm.get_embedder(None)
    assert emb.name == idm.FALLBACK
    res = idm.identity_similarity(photo, photo, emb)
    assert res["similarity"] == pytest.approx(1.0, abs=1e-9)
    assert "NOT a face-recognition model" in res["note"]
    blank = np.full_like(photo, 128)
    none = idm.identity_similarity(photo, blank, emb)
    assert (
        math.isnan(none["similarity"])
        and none["face_in_result"] is False
        and none["face_in_source"] is True
    )
    assert "no face found in the result" in none["note"]
