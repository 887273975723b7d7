"""Without facenet-pytorch installed, people are still found (MediaPipe's face detector alone)."""

from __future__ import annotations

import sys

import cv2

from poselab.models.pose import person_finder


def test_faces_without_facenet_pytorch(monkeypatch, pose_data, caplog):
    image = cv2.cvtColor(cv2.imread(str(pose_data / "106848.jpg")), cv2.COLOR_BGR2RGB)
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # makes the import fail
    monkeypatch.setattr(person_finder, "_FACE_MODELS", {})
    with caplog.at_level("WARNING", logger="poselab"):
        faces = person_finder.detect_faces(image)
    assert "pip install --no-deps facenet-pytorch" in caplog.text
    assert len(faces) >= 1 and all(x1 > x0 and y1 > y0 for x0, y0, x1, y1, _ in faces)
