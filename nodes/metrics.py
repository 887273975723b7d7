"""Metric nodes: numbers (FLOAT + JSON STRING), a report IMAGE, and the numbers in the node's UI.

Thin glue over models/metrics/. Every node is an output node so it runs (and shows its
numbers) even when nothing is connected after it. Conventions shared by all of them:

* FLOAT outputs are batch means. A metric that cannot be computed (no face, no annotated
  joint, LPIPS without weights) is NaN there and ``null`` in the JSON.
* PSNR of identical images is infinite: ``"inf"`` in the JSON and the report, and
  ``PSNR_CAP_DB`` (100 dB) in the FLOAT output so downstream arithmetic stays finite.
"""

from __future__ import annotations

import json
import logging
import os
import threading

import numpy as np
import torch

from comfy_api.latest import io, ui

from ..models.common.images import (
    image_batch_to_numpy,
    numpy_to_image_batch,
    paired_batch_size,
    pick,
)
from ..models.metrics import (
    clip_scores,
    fid_kid,
    identity,
    image_quality,
    lpips_metric,
    pose_accuracy,
)
from ..models.metrics.report import fmt, json_safe, render_table
from ..models.pose.keypoints import (
    OPENPOSE18_NAMES,
    parse_pose_keypoint,
    scaled_bodies,
    to_pose_keypoint,
)
from .common import PoseKeypoint, Progress, check_interrupted
from .model_folders import (
    MissingModelError,
    folder_locations,
    list_model_files,
    reading_model,
    resolve_model_file,
)

log = logging.getLogger("poselab")

CATEGORY = "PoseLab/metrics"
NONE = "(none)"
ALPHAS = (0.05, 0.1, 0.2)


def _nanmean(values) -> float:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


def _mean_keep_inf(values) -> float:
    """Mean ignoring NaN; one identical pair (PSNR inf) makes the mean inf, which is its true value."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan")
    return float(v.mean())


def _output(floats: tuple, summary: dict, report: np.ndarray, text: str) -> io.NodeOutput:
    return io.NodeOutput(
        *floats,
        json.dumps(json_safe(summary), indent=1),
        numpy_to_image_batch([report]),
        ui=ui.PreviewText(text),
    )


def _json_out():
    return io.String.Output(
        display_name="json",
        tooltip='All numbers, per image and mean, as JSON (inf as "inf", NaN as null).',
    )


def _report_out():
    return io.Image.Output(
        display_name="report",
        tooltip="A readable table (and bars) of the numbers; save or preview it.",
    )


# ----------------------------------------------------------------------------- image metrics


class ImageMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabImageMetrics",
            display_name="Image Metrics: SSIM / PSNR / LPIPS (PoseLab)",
            category=CATEGORY,
            is_output_node=True,
            description="Compare generated images with references: SSIM (Gaussian window sigma 1.5, as pose-transfer "
            "papers and scikit-image compute it), SSIM inside a mask, PSNR, and LPIPS when a backbone "
            "file is chosen.",
            inputs=[
                io.Image.Input("image", tooltip="The generated image(s) to measure."),
                io.Image.Input(
                    "reference",
                    tooltip="The ground truth / reference image(s), same size. A batch of 1 is "
                    "reused for every image.",
                ),
                io.Combo.Input(
                    "lpips_weights",
                    options=[NONE] + list_model_files("lpips"),
                    default=NONE,
                    tooltip="LPIPS backbone: a torchvision AlexNet/VGG16/SqueezeNet state dict in "
                    "models/lpips (e.g. alexnet-owt-7be5be79.pth). (none) skips LPIPS.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Optional region (e.g. the person) for masked SSIM: the mean of the SSIM map "
                    "inside the mask.",
                ),
            ],
            outputs=[
                io.Float.Output(
                    display_name="ssim", tooltip="Mean SSIM over the batch (1 = identical)."
                ),
                io.Float.Output(
                    display_name="masked_ssim",
                    tooltip="Mean SSIM inside the mask; NaN without a mask.",
                ),
                io.Float.Output(
                    display_name="psnr",
                    tooltip="Mean PSNR in dB; identical images are capped at 100 dB "
                    "here (the JSON says inf).",
                ),
                io.Float.Output(
                    display_name="lpips",
                    tooltip="Mean LPIPS distance (0 = identical); NaN when no weights are chosen.",
                ),
                _json_out(),
                _report_out(),
            ],
        )

    @classmethod
    def execute(cls, image, reference, lpips_weights, mask=None) -> io.NodeOutput:
        if image.shape[1:3] != reference.shape[1:3]:
            raise ValueError(
                f"image is {image.shape[2]}x{image.shape[1]} but reference is {reference.shape[2]}x{reference.shape[1]}: "
                "metrics compare pixel by pixel, so resize one of them first (e.g. ImageScale)"
            )
        n = paired_batch_size(
            {
                "image": image.shape[0],
                "reference": reference.shape[0],
                "mask": None if mask is None else (mask.shape[0] if mask.ndim == 3 else 1),
            }
        )
        a, b = image[..., :3], reference[..., :3]
        a = a.expand(n, -1, -1, -1) if a.shape[0] == 1 else a
        b = b.expand(n, -1, -1, -1) if b.shape[0] == 1 else b
        ssim = image_quality.ssim(a, b).tolist()
        psnr = image_quality.psnr(a, b).tolist()
        masked = [float("nan")] * n
        if mask is not None:
            m = mask if mask.ndim == 3 else mask[None]
            if m.shape[1:] != image.shape[1:3]:
                raise ValueError(
                    f"mask is {m.shape[2]}x{m.shape[1]} but the images are {image.shape[2]}x{image.shape[1]}: "
                    "give a mask of the image size"
                )
            masked = image_quality.masked_ssim(a, b, m).tolist()
        check_interrupted()
        lp = [float("nan")] * n
        net = None
        if lpips_weights and lpips_weights != NONE:
            path = resolve_model_file("lpips", lpips_weights)
            with reading_model("lpips", lpips_weights):
                metric = lpips_metric.get_lpips(path)
            net = metric.net_name
            lp = metric(a, b).tolist()
        per = [
            {"ssim": ssim[i], "masked_ssim": masked[i], "psnr": psnr[i], "lpips": lp[i]}
            for i in range(n)
        ]
        means = {
            "ssim": _nanmean(ssim),
            "masked_ssim": _nanmean(masked),
            "psnr": _mean_keep_inf(psnr),
            "lpips": _nanmean(lp),
        }
        summary = {
            "metric": "image",
            "count": n,
            "mean": means,
            "per_image": per,
            "lpips_backbone": net,
            "ssim_protocol": "gaussian sigma=1.5, population covariance, data_range=1",
        }
        header = ["image", "SSIM", "masked SSIM", "PSNR dB", f"LPIPS-{net}" if net else "LPIPS"]
        rows = [
            [str(i), r["ssim"], r["masked_ssim"], r["psnr"], r["lpips"]] for i, r in enumerate(per)
        ]
        if n > 1:
            rows.append(
                ["mean", means["ssim"], means["masked_ssim"], means["psnr"], means["lpips"]]
            )
        bars = [("SSIM", means["ssim"])] + (
            [("masked SSIM", means["masked_ssim"])] if mask is not None else []
        )
        note = "" if net else "LPIPS: choose backbone weights in models/lpips to compute it"
        report = render_table("Image metrics", header, rows, bars=bars, bar_max=1.0, note=note)
        text = (
            f"SSIM {fmt(means['ssim'])} | masked SSIM {fmt(means['masked_ssim'])} | PSNR {fmt(means['psnr'])} dB"
            f" | LPIPS {fmt(means['lpips'])} (n={n})"
        )
        floats = (
            means["ssim"],
            means["masked_ssim"],
            image_quality.capped(means["psnr"]),
            means["lpips"],
        )
        return _output(floats, summary, report, text)


# ----------------------------------------------------------------------------- pose accuracy

_DETECTOR = None
_DETECTOR_LOCK = threading.Lock()


def _detector():
    global _DETECTOR
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            from ..models.pose.detect_mediapipe import MediaPipePoseDetector

            _DETECTOR = MediaPipePoseDetector()
        return _DETECTOR


class PoseAccuracy(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabPoseAccuracy",
            display_name="Pose Accuracy: PCK / OKS (PoseLab)",
            category=CATEGORY,
            is_output_node=True,
            description="Did the generated image take the target pose? Re-extracts the pose from the image (MediaPipe, "
            "embedded) and compares it with the target: PCK@0.05/0.1/0.2 of the person's size and COCO "
            "OKS, per joint and overall. Detected people are matched to target people first.",
            inputs=[
                io.Image.Input("image", tooltip="The generated image(s)."),
                io.Float.Input(
                    "max_match_distance",
                    default=0.5,
                    min=0.05,
                    max=5.0,
                    step=0.05,
                    tooltip="A detection further than this (mean joint distance / person size) from a target "
                    "person is not matched to it; that person's joints count as missed.",
                ),
                PoseKeypoint.Input(
                    "target_pose",
                    optional=True,
                    tooltip="The pose the image should show (POSE_KEYPOINT, one frame per image or one "
                    "for all), scaled to the image if its canvas differs. Give this or "
                    "target_image.",
                ),
                io.Image.Input(
                    "target_image",
                    optional=True,
                    tooltip="Instead of target_pose: a photo in the target pose (e.g. the ground-truth "
                    "photo of a pair); its pose is extracted here with MediaPipe.",
                ),
                PoseKeypoint.Input(
                    "detected_pose",
                    optional=True,
                    tooltip="Optional: an already-extracted pose of the image (e.g. from another "
                    "detector) instead of running MediaPipe here.",
                ),
            ],
            outputs=[
                io.Float.Output(
                    display_name="pck@0.05",
                    tooltip="Fraction of target joints within 5% of the person size.",
                ),
                io.Float.Output(
                    display_name="pck@0.1",
                    tooltip="Fraction of target joints within 10% of the person size.",
                ),
                io.Float.Output(
                    display_name="pck@0.2",
                    tooltip="Fraction of target joints within 20% of the person size.",
                ),
                io.Float.Output(
                    display_name="oks",
                    tooltip="Mean COCO Object Keypoint Similarity over target people.",
                ),
                PoseKeypoint.Output(
                    display_name="detected_pose",
                    tooltip="The pose found in the generated image(s).",
                ),
                _json_out(),
                _report_out(),
            ],
        )

    @classmethod
    def execute(
        cls, image, max_match_distance, target_pose=None, target_image=None, detected_pose=None
    ) -> io.NodeOutput:
        if target_pose is not None:
            targets = parse_pose_keypoint(target_pose)
        elif target_image is not None:
            targets = [_detector()(f) for f in image_batch_to_numpy(target_image)]
        else:
            raise ValueError(
                "connect target_pose (the pose the image should show) or target_image (a photo in that pose)"
            )
        if not targets:
            raise ValueError(
                "target_pose holds no frames: connect the pose the image was generated from"
            )
        given = parse_pose_keypoint(detected_pose) if detected_pose is not None else None
        sizes = {"image": image.shape[0], "target_pose": len(targets)}
        if given is not None:
            sizes["detected_pose"] = len(given)
        n = paired_batch_size(sizes)
        frames = image_batch_to_numpy(image)
        h, w = frames[0].shape[:2]
        progress = Progress(n)
        results, detected = [], []
        for i in range(n):
            if given is not None:
                det = pick(given, i)
                pred = scaled_bodies(det, w, h)
            else:
                det = _detector()(pick(frames, i))
                pred = [p.body.astype(np.float64) for p in det.people]
            detected.append(det)
            gt = scaled_bodies(pick(targets, i), w, h)
            if not gt:
                log.warning(
                    "PoseLab pose accuracy: target frame %d has no person; nothing to compare", i
                )
            results.append(
                pose_accuracy.pose_accuracy(pred, gt, ALPHAS, max_distance=max_match_distance)
            )
            progress.step()
        s = pose_accuracy.summarize(results, ALPHAS)
        per_image = [
            {
                "matches": r["matches"],
                "oks": r["oks"],
                **{f"pck@{a}": r["pck"][a]["overall"] for a in ALPHAS},
            }
            for r in results
        ]
        summary = {
            "metric": "pose",
            "detector": "given" if given is not None else "mediapipe",
            "target": "pose" if target_pose is not None else "extracted from target_image",
            "reference_size": "max(width, height) of the target person's joint box",
            "oks_area": "area of the target person's joint box",
            "count_joints": s["count"],
            "people": s["people"],
            "oks": s["oks"],
            **{f"pck@{a}": s["pck"][a] for a in ALPHAS},
            "per_joint": {
                OPENPOSE18_NAMES[j]: {f"pck@{a}": s["pck_per_joint"][a][j] for a in ALPHAS}
                for j in range(len(OPENPOSE18_NAMES))
            },
            "per_image": per_image,
        }
        rows = [
            [OPENPOSE18_NAMES[j]] + [s["pck_per_joint"][a][j] for a in ALPHAS]
            for j in range(len(OPENPOSE18_NAMES))
        ]
        rows.append(["overall"] + [s["pck"][a] for a in ALPHAS])
        bars = [(f"PCK@{a}", s["pck"][a]) for a in ALPHAS] + [("OKS", s["oks"])]
        report = render_table(
            "Pose accuracy (target vs re-extracted)",
            ["joint"] + [f"PCK@{a}" for a in ALPHAS],
            rows,
            bars=bars,
            bar_max=1.0,
            note=f"{s['people']} target people, {s['count']} joints, n={n}",
        )
        text = " | ".join(
            [f"PCK@{a} {fmt(s['pck'][a])}" for a in ALPHAS]
            + [f"OKS {fmt(s['oks'])}", f"people {s['people']}"]
        )
        return io.NodeOutput(
            s["pck"][0.05],
            s["pck"][0.1],
            s["pck"][0.2],
            s["oks"],
            to_pose_keypoint(detected),
            json.dumps(json_safe(summary), indent=1),
            numpy_to_image_batch([report]),
            ui=ui.PreviewText(text),
        )


# ----------------------------------------------------------------------------- identity


def insightface_packs() -> list[str]:
    """Subfolders of models/insightface holding .onnx files (model packs such as buffalo_l)."""
    packs = set()
    for f in list_model_files("insightface"):
        if f.endswith(".onnx") and "/" in f.replace("\\", "/"):
            packs.add(os.path.dirname(f.replace("\\", "/")))
    return sorted(packs)


def _pack_path(pack: str) -> str:
    for root in folder_locations("insightface"):
        path = os.path.join(root, pack)
        if identity.is_insightface_pack(path):
            return path
    where = " or ".join(folder_locations("insightface"))
    raise MissingModelError(
        f"insightface pack '{pack}' not found: put the folder (with its .onnx files) in {where}"
    )


class IdentitySimilarity(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabIdentitySimilarity",
            display_name="Identity Similarity (PoseLab)",
            category=CATEGORY,
            is_output_node=True,
            description="Is it still the same person? Cosine similarity of face embeddings of the source and the "
            "result: insightface ArcFace from a pack in models/insightface, or, without one, an MTCNN crop "
            "with a HOG descriptor (a weak proxy; the output says which embedder was used).",
            inputs=[
                io.Image.Input("source", tooltip="The person's original photo(s)."),
                io.Image.Input("result", tooltip="The generated image(s)."),
                io.Combo.Input(
                    "insightface_pack",
                    options=["(fallback: mtcnn+hog)"] + insightface_packs(),
                    tooltip="A model pack folder in models/insightface (e.g. buffalo_l with det_10g.onnx "
                    "and w600k_r50.onnx) for ArcFace; the fallback needs no download but is not "
                    "a face-recognition model.",
                ),
            ],
            outputs=[
                io.Float.Output(
                    display_name="similarity",
                    tooltip="Mean cosine similarity (1 = same embedding); NaN "
                    "when no face was found.",
                ),
                io.String.Output(
                    display_name="embedder", tooltip="Which embedder produced the number."
                ),
                _json_out(),
                _report_out(),
            ],
        )

    @classmethod
    def execute(cls, source, result, insightface_pack) -> io.NodeOutput:
        n = paired_batch_size({"source": source.shape[0], "result": result.shape[0]})
        pack = None if insightface_pack.startswith("(fallback") else _pack_path(insightface_pack)
        if pack is None:
            embedder = identity.get_embedder(None)
        else:
            with reading_model("insightface", insightface_pack):
                embedder = identity.get_embedder(pack)
        src, out = image_batch_to_numpy(source), image_batch_to_numpy(result)
        progress = Progress(n)
        per = []
        for i in range(n):
            per.append(identity.identity_similarity(pick(src, i), pick(out, i), embedder))
            progress.step()
        mean = _nanmean([r["similarity"] for r in per])
        notes = sorted({r["note"] for r in per if r["note"]})
        summary = {
            "metric": "identity",
            "embedder": embedder.name,
            "similarity": mean,
            "per_image": per,
            "notes": notes,
        }
        rows = [
            [
                str(i),
                r["similarity"],
                "yes" if r["face_in_source"] else "no",
                "yes" if r["face_in_result"] else "no",
            ]
            for i, r in enumerate(per)
        ]
        report = render_table(
            f"Identity similarity ({embedder.name})",
            ["image", "cosine", "face in source", "face in result"],
            rows,
            bars=[("mean cosine", mean)],
            bar_max=1.0,
            note=notes[0][:110] if notes else "",
        )
        text = f"identity {fmt(mean)} ({embedder.name}, n={n})" + (
            f" | {notes[0]}" if notes else ""
        )
        return io.NodeOutput(
            mean,
            embedder.name,
            json.dumps(json_safe(summary), indent=1),
            numpy_to_image_batch([report]),
            ui=ui.PreviewText(text),
        )


# ----------------------------------------------------------------------------- CLIP


def _text_embeds(clip, text: str) -> torch.Tensor:
    tokens = clip.tokenize(text)
    _, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    if pooled is None:
        raise ValueError(
            "this CLIP gives no pooled text output; load a CLIP text encoder (e.g. SD1.5's CLIP-L)"
        )
    return pooled.reshape(pooled.shape[0], -1)[:1].float().cpu()


class ClipScore(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabClipScore",
            display_name="CLIP Score / Directional CLIP (PoseLab)",
            category=CATEGORY,
            is_output_node=True,
            description="Text-image agreement with the CLIP models you already load: CLIP score = 100*max(cos, 0) "
            "between the result and the prompt; directional CLIP = cos(image change, text change) when "
            "a source image and source prompt are given. The two models must be a pair (same width).",
            inputs=[
                io.Clip.Input(
                    "clip", tooltip="The text CLIP (e.g. from Load Checkpoint / Load CLIP)."
                ),
                io.ClipVision.Input(
                    "clip_vision", tooltip="The matching CLIP vision model (Load CLIP Vision)."
                ),
                io.Image.Input("image", tooltip="The generated image(s)."),
                io.String.Input(
                    "prompt", multiline=True, default="", tooltip="What the result should show."
                ),
                io.Image.Input(
                    "source_image",
                    optional=True,
                    tooltip="The image before the edit (for directional CLIP).",
                ),
                io.String.Input(
                    "source_prompt",
                    multiline=True,
                    default="",
                    optional=True,
                    tooltip="A caption of the source image (for directional CLIP).",
                ),
            ],
            outputs=[
                io.Float.Output(
                    display_name="clip_score", tooltip="Mean 100*max(cos(image, prompt), 0)."
                ),
                io.Float.Output(
                    display_name="directional",
                    tooltip="Mean directional similarity in [-1, 1]; NaN "
                    "without a source image and prompt.",
                ),
                _json_out(),
                _report_out(),
            ],
        )

    @classmethod
    def execute(
        cls, clip, clip_vision, image, prompt, source_image=None, source_prompt=""
    ) -> io.NodeOutput:
        if not prompt.strip():
            raise ValueError("prompt is empty: write what the result should show")
        img = clip_vision.encode_image(image[..., :3]).image_embeds.float().cpu()
        txt = _text_embeds(clip, prompt)
        clip_scores.check_pair(img.shape[-1], txt.shape[-1])
        scores = clip_scores.clip_score(img, txt).tolist()
        directional = [float("nan")] * len(scores)
        if source_image is not None and source_prompt and source_prompt.strip():
            n = paired_batch_size({"image": image.shape[0], "source_image": source_image.shape[0]})
            src = clip_vision.encode_image(source_image[..., :3]).image_embeds.float().cpu()
            stxt = _text_embeds(clip, source_prompt)
            directional = clip_scores.directional_similarity(src, img, stxt, txt).tolist()
            directional = [pick(directional, i) for i in range(n)]
        mean_s, mean_d = _nanmean(scores), _nanmean(directional)
        summary = {
            "metric": "clip",
            "embedding_dim": int(img.shape[-1]),
            "clip_score": mean_s,
            "directional": mean_d,
            "per_image": [
                {"clip_score": pick(scores, i), "directional": directional[i]}
                for i in range(len(directional))
            ],
        }
        rows = [
            [str(i), r["clip_score"], r["directional"]] for i, r in enumerate(summary["per_image"])
        ]
        report = render_table(
            "CLIP",
            ["image", "CLIP score", "directional"],
            rows,
            bars=[("CLIP score", mean_s)],
            bar_max=100.0,
        )
        text = f"CLIP score {fmt(mean_s)} | directional {fmt(mean_d)}"
        return _output((mean_s, mean_d), summary, report, text)


# ----------------------------------------------------------------------------- FID / KID


class FIDKID(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PoseLabFIDKID",
            display_name="FID / KID (PoseLab)",
            category=CATEGORY,
            is_output_node=True,
            description="Distribution distance between two image sets with Inception-v3 features: FID and KID "
            "(mean and std over subsets). Needs many images (hundreds) to mean much; with a few it is a "
            "rough indication only.",
            inputs=[
                io.Image.Input(
                    "images_a", tooltip="First set (e.g. generated images), at least 2."
                ),
                io.Image.Input("images_b", tooltip="Second set (e.g. real images), at least 2."),
                io.Combo.Input(
                    "inception_weights",
                    options=list_model_files("inception") or [NONE],
                    tooltip="Inception-v3 state dict in models/inception: torchvision's inception_v3 "
                    "weights or pytorch-fid's pt_inception-2015-12-05-6726825d.pth.",
                ),
                io.Int.Input(
                    "kid_subset_size",
                    default=1000,
                    min=2,
                    max=100000,
                    tooltip="KID subset size (capped at the set sizes).",
                ),
            ],
            outputs=[
                io.Float.Output(
                    display_name="fid", tooltip="Fréchet Inception Distance (0 = same statistics)."
                ),
                io.Float.Output(
                    display_name="kid", tooltip="Kernel Inception Distance, mean over subsets."
                ),
                io.Float.Output(
                    display_name="kid_std", tooltip="KID standard deviation over subsets."
                ),
                _json_out(),
                _report_out(),
            ],
        )

    @classmethod
    def execute(cls, images_a, images_b, inception_weights, kid_subset_size) -> io.NodeOutput:
        if inception_weights == NONE:
            where = " or ".join(folder_locations("inception"))
            raise MissingModelError(
                f"no Inception-v3 weights: put torchvision's inception_v3 state dict (e.g. inception_v3_google-0cc3c7bd.pth) "
                f"or pytorch-fid's pt_inception-2015-12-05-6726825d.pth in {where}, then refresh"
            )
        if images_a.shape[0] < 2 or images_b.shape[0] < 2:
            raise ValueError(
                f"FID/KID need at least 2 images in each set, got {images_a.shape[0]} and {images_b.shape[0]}"
            )
        path = resolve_model_file("inception", inception_weights)
        with reading_model("inception", inception_weights):
            net = fid_kid.get_inception(path)
        fa = net(images_a)
        check_interrupted()
        fb = net(images_b)
        fid = fid_kid.fid_from_features(fa, fb)
        kid, kid_std = fid_kid.kid_from_features(fa, fb, subset_size=kid_subset_size)
        summary = {
            "metric": "fid_kid",
            "fid": fid,
            "kid": kid,
            "kid_std": kid_std,
            "n_a": len(fa),
            "n_b": len(fb),
            "features": "inception_v3 pool 2048-d",
            "weights": inception_weights,
        }
        rows = [
            ["FID", fid],
            ["KID", kid],
            ["KID std", kid_std],
            ["images", f"{len(fa)} vs {len(fb)}"],
        ]
        note = "few images: indicative only" if min(len(fa), len(fb)) < 100 else ""
        report = render_table("FID / KID", ["metric", "value"], rows, note=note)
        text = f"FID {fmt(fid)} | KID {fmt(kid)} ± {fmt(kid_std)} ({len(fa)} vs {len(fb)} images)"
        return _output((fid, kid, kid_std), summary, report, text)


NODES = [ImageMetrics, PoseAccuracy, IdentitySimilarity, ClipScore, FIDKID]
