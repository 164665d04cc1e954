"""The zero-download teacher: MediaPipe BlazePose landmarks solved onto the body's skeleton.

MediaPipe's pose solution (``pip install ros2_radar_pose[blazepose]``; its detector and landmark
models ship inside the wheel) gives 33 landmarks per image: *world* landmarks in metres with the
origin at the hip midpoint, and *image* landmarks (normalised x, y) with a visibility each. This
module turns them into a ``TeacherPose`` in three steps:

1. ``landmarks_to_hybrik29``: the 33 landmarks -> the 29 HYBRIK_29 IK targets. BlazePose and
   SMPL do not mark the same anatomical points; each approximation is in the table below. The
   trunk and the head are the rest skeleton (the body model's, at zero shape) scaled by the
   person's trunk length and turned onto frames measured from the landmarks, so the targets
   form a consistent skeleton of that shape:

   =====================  ======================================================================
   HYBRIK_29 joint        BlazePose landmarks (index) and the approximation
   =====================  ======================================================================
   pelvis, hips, spine1   hips (23, 24), shoulders (11, 12): the rest offsets from the rest hip
                          midpoint in a pelvis frame (up: hip midpoint -> shoulder midpoint; left:
                          the hip line). SMPL's hip joints sit inside BlazePose's hip landmarks
                          (near the outside of the hip): only their midpoint and direction are
                          used, the width is the rest skeleton's. So the pelvis is the hip
                          midpoint raised a little (0.05 H in the built-in body).
   spine2                 as above, the frame's left halfway between the hip and shoulder lines.
   spine3, neck, collars  shoulders (11, 12): the rest offsets from the rest shoulder midpoint in a
                          chest frame (left: the shoulder line). The spine is straight between the
                          two midpoints (BlazePose sees no spine bend); the collars lie between
                          the neck and the shoulders, at the rest skeleton's places.
   shoulders, elbows,     the landmarks of those names (BlazePose's shoulder is near the acromion,
   wrists, knees, ankles  a few cm outside SMPL's shoulder joint).
   head                   ears (7, 8): their midpoint, at the level of the skull base.
   head_top               ears, eyes (2, 5): the rest head -> head_top offset in a head frame
                          (left: the ear line; forward: ear midpoint -> eye midpoint). The eyes sit
                          a little above the ear line: the head reads pitched up by ~10 degrees.
   hands                  index (19, 20) and pinky (17, 18) knuckles: their midpoint.
   middle tips            the wrist -> knuckles line extended to the rest finger length (a flat
                          hand; the thumb is not used).
   feet                   SMPL's foot is the ball of the foot: on the ankle (27, 28) -> foot_index
                          (31, 32) line at the rest skeleton's fraction (the heel is not used).
   big toes               foot_index (31, 32), the tip of the foot.
   =====================  ======================================================================

2. Root placement in the camera's optical frame (world landmarks are hip-centred):
   ``place_targets`` puts the pelvis at the radar's person centre when there is one
   (``pelvis_from_radar``), else solves the translation from the image (``translation_from_image``).
   World landmarks are aligned with the camera axes (x right, y down, z away) only
   approximately: their orientation is BlazePose's guess from one image, of a camera it does not
   know, and no rotation is solved for here (only a translation), so the image landmarks are
   matched with a residual (about 10 px, up to 35 px, on a 512 px test photograph).
3. ``BlazePoseBackend`` runs MediaPipe per image and solves the targets with HybrIK's analytical
   IK at zero twist on the body's rest skeleton (zero shape). The IK keeps the rest skeleton's bone
   lengths: the published positions are the rest skeleton's bones aimed along the landmarks, from
   the placed pelvis, not the landmarks themselves. Rotations (for TF display) carry zero twist
   about each bone.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ros2_radar_pose.body.hybrik_ik import N_TWISTS, inverse_kinematics
from ros2_radar_pose.body.joint_sets import HYBRIK_29
from ros2_radar_pose.body.models import BodyModel, load_body_model
from ros2_radar_pose.teacher.backends import TeacherPose
from ros2_radar_pose.teacher.camera import PinholeCamera
from ros2_radar_pose.teacher.crop import PersonBox

# BlazePose's 33 landmarks, in its order; "left" is the person's left.
LANDMARKS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
# The trunk: the score, and the landmarks the root and the trunk's frames hang on.
CORE_LANDMARKS = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
# The radar sees the body's surface facing it: the cluster centre lies about half a trunk depth
# in front of the body's axis, where the pelvis is.
RADAR_SURFACE_DEPTH = 0.10       # m
FALLBACK_DEPTH = 2.0             # m, for a root the image cannot solve
MIN_DEPTH = 0.2                  # m, nearer than this the solve is taken as failed
MAX_DEPTH_NOISE = 0.05           # a root whose depth moves more than this fraction per pixel of
                                 # landmark noise is too small or far in the image to measure
MIN_VISIBILITY = 0.5             # a landmark this visible enters the root solve
MIN_CROP = 16                    # pixels: a box clipped to less than this is not worth a run
INSTALL_HINT = "pip install mediapipe==0.10.14 or `pip install ros2_radar_pose[blazepose]`"

_L = LANDMARKS.index
_J = HYBRIK_29.index
_SIDES = ("left", "right")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _frame(left: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) whose columns are left, up, forward (SMPL's canonical axes) from an
    approximate ``left`` (..., 3) and the ``up`` (..., 3) it is made orthogonal to."""
    up = _unit(up)
    left = _unit(left - (left * up).sum(-1, keepdims=True) * up)
    return np.stack([left, up, np.cross(left, up)], axis=-1)


@lru_cache(maxsize=1)
def _builtin_rest() -> np.ndarray:
    with torch.no_grad():
        body = load_body_model(None)
        return body.rest_joints(torch.zeros(1, body.num_betas, dtype=torch.float64))[0].numpy()


def landmarks_to_hybrik29(world: np.ndarray, rest_joints: np.ndarray | None = None) -> np.ndarray:
    """BlazePose world landmarks (N, 33, 3) -> HYBRIK_29 IK targets (N, 29, 3), in the landmarks'
    frame, after the table in the module docstring. ``rest_joints`` (29, 3), SMPL's canonical frame,
    give the proportions (default: the built-in body at zero shape)."""
    world = np.asarray(world, dtype=np.float64)
    if world.ndim != 3 or world.shape[1:] != (len(LANDMARKS), 3):
        raise ValueError(f"landmarks_to_hybrik29 takes (N, 33, 3) world landmarks, got {world.shape}")
    rest = _builtin_rest() if rest_joints is None else np.asarray(rest_joints, dtype=np.float64)
    if rest.shape != (len(HYBRIK_29), 3):
        raise ValueError(f"rest_joints must be (29, 3), got {rest.shape}")

    def mark(name: str) -> np.ndarray:
        return world[:, _L(name)]

    def rest_midpoint(pair: str) -> np.ndarray:
        return 0.5 * (rest[_J("left_" + pair)] + rest[_J("right_" + pair)])

    hips = 0.5 * (mark("left_hip") + mark("right_hip"))                                    # (N, 3)
    shoulders = 0.5 * (mark("left_shoulder") + mark("right_shoulder"))
    rest_hips, rest_shoulders = rest_midpoint("hip"), rest_midpoint("shoulder")            # (3,)
    spine = shoulders - hips
    scale = np.linalg.norm(spine, axis=-1) / np.linalg.norm(rest_shoulders - rest_hips)    # (N,)
    hip_line = mark("left_hip") - mark("right_hip")
    shoulder_line = mark("left_shoulder") - mark("right_shoulder")
    ears = 0.5 * (mark("left_ear") + mark("right_ear"))
    ear_line = mark("left_ear") - mark("right_ear")
    gaze = 0.5 * (mark("left_eye") + mark("right_eye")) - ears
    # Rest offsets are measured in the rest trunk's own frame, so a rest skeleton that is not
    # exactly upright in its canonical frame (SMPL's) still maps onto itself.
    rest_frame = _frame(rest[_J("left_hip")] - rest[_J("right_hip")], rest_shoulders - rest_hips)
    out = np.empty((len(world), len(HYBRIK_29), 3))

    def place(names: tuple[str, ...], frame: np.ndarray, anchor: np.ndarray, rest_anchor: np.ndarray):
        index = [_J(n) for n in names]
        offsets = (rest[index] - rest_anchor) @ rest_frame                                  # (k, 3)
        out[:, index] = anchor[:, None] + scale[:, None, None] * np.einsum("nij,kj->nki", frame, offsets)

    place(("pelvis", "left_hip", "right_hip", "spine1"), _frame(hip_line, spine), hips, rest_hips)
    place(("spine2",), _frame(_unit(hip_line) + _unit(shoulder_line), spine), hips, rest_hips)
    place(("spine3", "neck", "left_collar", "right_collar"), _frame(shoulder_line, spine), shoulders, rest_shoulders)
    out[:, _J("head")] = ears
    place(("head_top",), _frame(ear_line, np.cross(gaze, ear_line)), ears, rest[_J("head")])
    for side in _SIDES:
        for joint in ("shoulder", "elbow", "wrist", "knee", "ankle"):
            out[:, _J(f"{side}_{joint}")] = mark(f"{side}_{joint}")
        wrist, knuckles = mark(f"{side}_wrist"), 0.5 * (mark(f"{side}_index") + mark(f"{side}_pinky"))
        out[:, _J(f"{side}_hand")] = knuckles
        reach = (np.linalg.norm(rest[_J(f"{side}_middle_tip")] - rest[_J(f"{side}_wrist")])
                 / np.linalg.norm(rest[_J(f"{side}_hand")] - rest[_J(f"{side}_wrist")]))
        out[:, _J(f"{side}_middle_tip")] = wrist + reach * (knuckles - wrist)
        ankle, toe = mark(f"{side}_ankle"), mark(f"{side}_foot_index")
        rest_sole = rest[_J(f"{side}_big_toe")] - rest[_J(f"{side}_ankle")]
        ball = (rest[_J(f"{side}_foot")] - rest[_J(f"{side}_ankle")]) @ rest_sole / (rest_sole @ rest_sole)
        out[:, _J(f"{side}_foot")] = ankle + ball * (toe - ankle)
        out[:, _J(f"{side}_big_toe")] = toe
    return out


def translation_from_image(world: np.ndarray, pixels: np.ndarray, camera: PinholeCamera,
                           visibility: np.ndarray | None = None, min_visibility: float = MIN_VISIBILITY,
                           iterations: int = 3) -> np.ndarray:
    """The translation t (3,) that best reprojects ``world`` landmarks (33, 3) + t onto their image
    ``pixels`` (33, 2), over the landmarks at least ``min_visibility`` visible (all without
    ``visibility`` (33,)).

    For a pinhole camera each landmark gives two equations linear in t:
    fx (X + tx) - (u - cx) (Z + tz) = 0 and fy (Y + ty) - (v - cy) (Z + tz) = 0. Their residuals are
    pixel errors times the depth Z + tz, so the system is solved again with each row divided by the
    previous solution's depth (a few rounds minimise the pixel error itself). The system is
    ill-conditioned when the landmarks spread over too few pixels to measure the depth: with fewer
    than three landmarks, a depth that one pixel of noise moves by more than ``MAX_DEPTH_NOISE`` of
    itself, or a solution behind or at the camera, the hip midpoint is put ``FALLBACK_DEPTH`` m
    along its ray instead.
    """
    world = np.asarray(world, dtype=np.float64)
    pixels = np.asarray(pixels, dtype=np.float64)
    use = np.isfinite(world).all(-1) & np.isfinite(pixels).all(-1)
    if visibility is not None:
        use &= np.asarray(visibility) >= min_visibility
    p, q = world[use], pixels[use]
    du, dv = q[:, 0] - camera.cx, q[:, 1] - camera.cy
    zeros, ones = np.zeros(len(p)), np.ones(len(p))
    a = np.concatenate([np.stack([camera.fx * ones, zeros, -du], -1), np.stack([zeros, camera.fy * ones, -dv], -1)])
    b = np.concatenate([du * p[:, 2] - camera.fx * p[:, 0], dv * p[:, 2] - camera.fy * p[:, 1]])
    t = None
    if len(p) >= 3:
        weight = np.ones(len(p))
        for _ in range(iterations):
            rows = a * np.tile(weight, 2)[:, None]
            if np.linalg.matrix_rank(rows) < 3:      # every landmark on one pixel
                t = None
                break
            t = np.linalg.lstsq(rows, b * np.tile(weight, 2), rcond=None)[0]
            depth = p[:, 2] + t[2]
            if not (depth > MIN_DEPTH).all():
                t = None
                break
            weight = 1.0 / depth
        if t is not None:
            # Rows are now in pixels: the depth's standard deviation for one pixel of landmark noise.
            rows = a * np.tile(weight, 2)[:, None]
            if not np.sqrt(np.linalg.pinv(rows.T @ rows)[2, 2]) < MAX_DEPTH_NOISE * t[2]:
                t = None
    if t is not None and np.isfinite(t).all():
        return t
    hips = [_L("left_hip"), _L("right_hip")]
    hip_pixel = pixels[hips].mean(0) if np.isfinite(pixels[hips]).all() else np.array([camera.cx, camera.cy])
    return camera.backproject(hip_pixel, FALLBACK_DEPTH) - world[hips].mean(0)


def pelvis_from_radar(centre: np.ndarray) -> np.ndarray:
    """Where the pelvis goes (3,), camera frame, for the radar's person centre (3,) in the camera
    frame: ``RADAR_SURFACE_DEPTH`` further along the ray from the camera through the centre.

    The cluster's points lie on the body's surface facing the sensors (the radar sits beside the
    camera, so its rays and the camera's nearly agree): their mean is half a trunk depth in front of
    the body's axis. Vertically it is left as it is: the points of a standing person centre near
    half its height, where SMPL's pelvis is (0.555 H), and elevation is the radar's least accurate
    coordinate, which a shift would not fix."""
    centre = np.asarray(centre, dtype=np.float64)
    distance = np.linalg.norm(centre)
    return centre if distance < 1e-6 else centre * (1.0 + RADAR_SURFACE_DEPTH / distance)


def place_targets(world: np.ndarray, pixels: np.ndarray, visibility: np.ndarray, camera: PinholeCamera,
                  radar_centre: np.ndarray | None = None, rest_joints: np.ndarray | None = None) -> np.ndarray:
    """HYBRIK_29 targets (29, 3) in the camera frame from one person's world landmarks (33, 3),
    image ``pixels`` (33, 2) and ``visibility`` (33,): the pelvis at ``pelvis_from_radar`` when a
    ``radar_centre`` (3,) is given, else the image's ``translation_from_image``."""
    targets = landmarks_to_hybrik29(np.asarray(world)[None], rest_joints)[0]
    if radar_centre is not None:
        return targets + (pelvis_from_radar(radar_centre) - targets[_J("pelvis")])
    return targets + translation_from_image(world, pixels, camera, visibility)


@dataclass
class Landmarks:
    """One person's BlazePose output: ``world`` (33, 3) m, hip-centred; ``pixels`` (33, 2) in the
    full image; ``visibility`` (33,) in [0, 1]."""

    world: np.ndarray
    pixels: np.ndarray
    visibility: np.ndarray

    @property
    def score(self) -> float:
        return float(self.visibility[[_L(n) for n in CORE_LANDMARKS]].mean())


class BlazePoseBackend:
    """The teacher backend over MediaPipe BlazePose (``TeacherBackend``); see the module docstring.

    ``body``: the skeleton the landmarks are solved onto (default: the built-in body);
    ``model_complexity``: MediaPipe's landmark model (0 lite, 1 full, 2 heavy); ``min_score``: the
    least mean visibility of the trunk's landmarks (shoulders, hips) for a person to count.
    The MediaPipe graph is created at the first image; ``close()`` (or a ``with`` block) frees it.
    """

    name = "blazepose"

    def __init__(self, body: BodyModel | None = None, model_complexity: int = 1, min_score: float = 0.5):
        if model_complexity not in (0, 1, 2):
            raise ValueError(f"model_complexity is 0, 1 or 2, got {model_complexity}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score is in [0, 1], got {min_score}")
        self.body = load_body_model(None) if body is None else body
        with torch.no_grad():
            rest = self.body.rest_joints(torch.zeros(1, self.body.num_betas, dtype=torch.float64))
        self.rest_joints = rest.to(torch.float64)                                           # (1, 29, 3)
        self.model_complexity = model_complexity
        self.min_score = min_score
        self._pose = None

    def _graph(self):
        if self._pose is None:
            try:
                import mediapipe as mp
            except ImportError as error:
                raise ImportError(f"the blazepose teacher needs mediapipe: {INSTALL_HINT}") from error
            self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=self.model_complexity)
        return self._pose

    def detect(self, image: np.ndarray, box: PersonBox | None = None) -> Landmarks | None:
        """BlazePose on one (H, W, 3) uint8 RGB image, inside ``box`` (clipped to the image) when given;
        None where it finds nobody."""
        height, width = image.shape[:2]
        left, top, right, bottom = 0, 0, width, height
        if box is not None:
            # The box spans pixel centres u +- size / 2; pixel i covers [i - 0.5, i + 0.5).
            half = box.size / 2
            left, right = (int(np.clip(round(c + 0.5), 0, width)) for c in (box.u - half, box.u + half))
            top, bottom = (int(np.clip(round(c + 0.5), 0, height)) for c in (box.v - half, box.v + half))
            if right - left < MIN_CROP or bottom - top < MIN_CROP:
                return None
        crop = np.ascontiguousarray(image[top:bottom, left:right])
        with warnings.catch_warnings():        # protobuf's deprecation notice, once per process
            warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
            result = self._graph().process(crop)
        if result.pose_world_landmarks is None or result.pose_landmarks is None:
            return None
        world = np.array([(m.x, m.y, m.z) for m in result.pose_world_landmarks.landmark])
        image_marks = np.array([(m.x, m.y, m.visibility) for m in result.pose_landmarks.landmark])
        # Normalised coordinates run edge to edge of the crop; pixel (0, 0) is the first pixel's centre.
        pixels = image_marks[:, :2] * (right - left, bottom - top) + (left - 0.5, top - 0.5)
        return Landmarks(world, pixels, np.clip(image_marks[:, 2], 0.0, 1.0))

    def estimate(self, images: np.ndarray, camera: PinholeCamera, boxes: list[PersonBox | None],
                 radar_centres: list[np.ndarray | None]) -> list[TeacherPose | None]:
        """``images`` (B, H, W, 3) uint8 RGB from ``camera``; ``boxes`` and ``radar_centres`` ((3,)
        camera frame or None) one per image. One ``TeacherPose`` per image (SMPL-24 positions and
        global rotations in the camera's optical frame), None where nobody passes ``min_score``."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"estimate takes (B, H, W, 3) uint8 RGB images, got {images.shape} {images.dtype}")
        if len(boxes) != len(images) or len(radar_centres) != len(images):
            raise ValueError(f"one box and one radar centre per image: {len(images)} images, "
                             f"{len(boxes)} boxes, {len(radar_centres)} centres")
        if images.shape[1:3] != (camera.height, camera.width):
            raise ValueError(f"the images are {images.shape[2]}x{images.shape[1]}, the camera "
                             f"{camera.width}x{camera.height}")
        rest = self.rest_joints[0].numpy()
        found, targets, scores = [], [], []
        for k, (image, box, centre) in enumerate(zip(images, boxes, radar_centres)):
            marks = self.detect(image, box)
            if marks is None or marks.score < self.min_score:
                continue
            found.append(k)
            scores.append(marks.score)
            targets.append(place_targets(marks.world, marks.pixels, marks.visibility, camera, centre, rest))
        poses: list[TeacherPose | None] = [None] * len(images)
        if not found:
            return poses
        twist = torch.zeros(len(found), N_TWISTS, 2, dtype=torch.float64)
        twist[..., 0] = 1.0
        with torch.no_grad():
            solved = inverse_kinematics(torch.from_numpy(np.stack(targets)), twist,
                                        self.rest_joints.expand(len(found), -1, -1))
        positions = solved.joints[:, :24].numpy().astype(np.float32)
        rotations = solved.global_rotations.numpy().astype(np.float32)
        for row, k in enumerate(found):
            poses[k] = TeacherPose(positions[row], rotations[row], scores[row], boxes[k])
        return poses

    def close(self) -> None:
        """Free the MediaPipe graph (a later image creates a new one)."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def __enter__(self) -> BlazePoseBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
