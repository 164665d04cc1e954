"""The radar student: a masked point-set encoder per frame, a Performer (FAVOR+) over a window of
frames, and heads for the pose of every frame.

Shapes: ``points`` (B, W, N, 5) float32 — W frames of up to N points, each x, y, z, velocity,
intensity (radar/points.py) in the radar frame, in metres, m/s and dB; ``mask`` (B, W, N) bool,
True for real points. The model normalises its input itself with statistics of its training data
(``set_statistics``, kept in the state dict), so a checkpoint is all a node needs.
Padded points take no part in pooling; a frame without points gets a learned "empty" embedding.

With ``centred`` (the default) each frame is anchored at the centroid of its points: the encoder
sees the points relative to it, the temporal block sees how the anchors moved within the window
(relative to the newest frame's), and the root head predicts the root's offset from its frame's
anchor. The pose then does not depend on where in the room a person stands, only on how the
cloud looks and moves, so a person seen in a place the training data never had is not pulled
towards the places it had (an absolute-coordinate student lagged by up to 0.6 m behind a person
walking towards the radar). A frame without points keeps the anchor of the frame before it in the
window (the window's first frame with points, for frames before any); a window without any point
anchors at the training data's mean root. Without ``centred`` (checkpoints made before it) the
anchor is always that mean root and the points are in the radar frame.

Heads, per frame: the root position (B, W, 3) and the joints relative to it, (B, W, J, 3) of
``joint_set``. With ``rotations=True`` (SMPL-based joint sets) the joint head predicts the 29
HybrIK joints, plus twist angles (cos, sin) of the 23 non-root joints and shape coefficients β,
which body/hybrik_ik.py turns into SMPL-24 rotations (``StudentPose.rotations``).

Streaming predicts the newest frame of a ring buffer of the last W frames: attention is not
causal, so the last frame attends to the whole (past) window and nothing else, and no step uses
performer-pytorch's slow causal path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from performer_pytorch import Performer
from torch import nn

from ros2_radar_pose.body.joint_sets import HYBRIK_29, JointSet, by_name

POINT_FEATURES = 5


@dataclass(frozen=True)
class StudentConfig:
    """Hyper-parameters of the student; saved in every checkpoint."""

    joint_set: str = "smpl_24"
    window: int = 32                  # frames the temporal block sees
    max_points: int = 64              # points kept per frame (the strongest; student/inputs.py)
    dim: int = 128
    depth: int = 2                    # Performer layers
    heads: int = 4
    nb_features: int = 64             # FAVOR+ random features per head
    point_layers: int = 3             # shared MLP layers of the point encoder
    rotations: bool = True            # twist and β heads (SMPL-based joint sets only)
    num_betas: int = 4
    dropout: float = 0.1
    centred: bool = True              # anchor each frame at its points' centroid (module docstring)

    def __post_init__(self):
        joint_set = by_name(self.joint_set)
        if self.rotations and not joint_set.name.startswith(("smpl", "hybrik")):
            raise ValueError(f"rotations need an SMPL-based joint set, not {joint_set.name}")
        if min(self.window, self.max_points, self.depth, self.point_layers) < 1 or self.dim % self.heads:
            raise ValueError("student: window, max_points, depth and point_layers must be >= 1, "
                             "and dim a multiple of heads")
        if not 0 <= self.dropout < 1:
            raise ValueError("student: dropout must be in [0, 1)")


@dataclass
class StudentPose:
    """Predictions for every frame of the window: ``root`` (B, W, 3), ``joints`` (B, W, J, 3) in the
    radar frame (root added), and with rotations ``twist`` (B, W, 23, 2), ``betas`` (B, W, K),
    ``joints29`` (B, W, 29, 3)."""

    root: torch.Tensor
    joints: torch.Tensor
    twist: torch.Tensor | None = None
    betas: torch.Tensor | None = None
    joints29: torch.Tensor | None = None


class PointSetEncoder(nn.Module):
    """A shared MLP over points, then masked max and mean pooling: (B, W, N, 5) -> (B, W, dim)."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        blocks, width = [], POINT_FEATURES
        for _ in range(layers):
            blocks += [nn.Linear(width, dim), nn.LayerNorm(dim), nn.GELU()]
            width = dim
        self.mlp = nn.Sequential(*blocks)
        self.out = nn.Linear(2 * dim, dim)
        self.empty = nn.Parameter(torch.zeros(dim))

    def forward(self, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features = self.mlp(points)                                              # (B, W, N, dim)
        weight = mask.unsqueeze(-1).to(features.dtype)
        count = weight.sum(dim=2)                                                # (B, W, 1)
        mean = (features * weight).sum(dim=2) / count.clamp(min=1)
        largest = features.masked_fill(~mask.unsqueeze(-1), torch.finfo(features.dtype).min).amax(dim=2)
        pooled = self.out(torch.cat([largest, mean], dim=-1))
        return torch.where(count > 0, pooled, self.empty.to(pooled.dtype))


class RadarPoseStudent(nn.Module):
    """Radar point clouds of W frames -> a pose per frame (see the module docstring)."""

    def __init__(self, config: StudentConfig | None = None):
        super().__init__()
        self.config = config = config or StudentConfig()
        self.joint_set: JointSet = by_name(config.joint_set)
        self.predicted_joints = len(HYBRIK_29) if config.rotations else len(self.joint_set)
        # Set from the training data (set_statistics) and saved with the weights.
        self.register_buffer("point_mean", torch.zeros(POINT_FEATURES))
        self.register_buffer("point_scale", torch.ones(POINT_FEATURES))
        self.register_buffer("root_mean", torch.zeros(3))
        self.encoder = PointSetEncoder(config.dim, config.point_layers)
        self.frame_position = nn.Parameter(torch.zeros(config.window, config.dim))
        nn.init.normal_(self.frame_position, std=0.02)
        self.temporal = Performer(dim=config.dim, depth=config.depth, heads=config.heads,
                                  dim_head=config.dim // config.heads, nb_features=config.nb_features,
                                  causal=False, ff_dropout=config.dropout, attn_dropout=config.dropout)
        if config.centred:
            self.anchor_motion = nn.Linear(3, config.dim)
        self.norm = nn.LayerNorm(config.dim)
        self.root_head = nn.Linear(config.dim, 3)
        self.joint_head = nn.Linear(config.dim, self.predicted_joints * 3)
        if config.rotations:
            self.twist_head = nn.Linear(config.dim, 23 * 2)
            self.beta_head = nn.Linear(config.dim, config.num_betas)

    @torch.no_grad()
    def set_statistics(self, point_mean: torch.Tensor, point_scale: torch.Tensor, root_mean: torch.Tensor) -> None:
        """Input normalisation, (5,) mean and scale of the point features (centred ones with
        ``centred``), and the mean root position (3,) (the anchor when there is no point to anchor
        at), all from the training data."""
        if not (torch.isfinite(point_mean).all() and torch.isfinite(root_mean).all()
                and torch.isfinite(point_scale).all() and (point_scale > 0).all()):
            raise ValueError("student statistics must be finite, with positive scales")
        self.point_mean.copy_(point_mean)
        self.point_scale.copy_(point_scale)
        self.root_mean.copy_(root_mean)

    def encode(self, points: torch.Tensor, mask: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        """One token per frame, (B, T, dim), for any number of frames T: training encodes a stretch
        of frames once and cuts it into overlapping windows for ``decode``. ``centroids`` (B, T, 3)
        are ``frame_centroids(points, mask)``, which ``decode`` needs too."""
        if points.shape[-1] != POINT_FEATURES or mask.shape != points.shape[:-1]:
            raise ValueError(f"points must be (B, W, N, {POINT_FEATURES}) with a (B, W, N) mask, "
                             f"got {tuple(points.shape)} and {tuple(mask.shape)}")
        if self.config.centred:
            points = centre_points(points, centroids)
        return self.encoder((points - self.point_mean) / self.point_scale, mask)

    def anchors(self, centroids: torch.Tensor) -> torch.Tensor:
        """The anchors (B, W, 3) of one window's frames from their centroids (B, W, 3), NaN for a
        frame without points (``frame_centroids``): see the module docstring."""
        batch, window = centroids.shape[:2]
        if not self.config.centred:
            return self.root_mean.expand(batch, window, 3)
        has_points = centroids[..., 0].isfinite()
        index = torch.arange(window, device=centroids.device).expand(batch, window)
        # the newest frame with points so far; before any, the first frame with points
        carried = torch.where(has_points, index, -1).cummax(dim=1).values
        first = has_points.to(torch.int64).argmax(dim=1, keepdim=True).expand(batch, window)
        carried = torch.where(carried < 0, first, carried)
        anchors = centroids.gather(1, carried.unsqueeze(-1).expand(batch, window, 3))
        return torch.where(has_points.any(dim=1)[:, None, None], anchors, self.root_mean.to(anchors.dtype))

    def decode(self, tokens: torch.Tensor, centroids: torch.Tensor, newest_only: bool = False) -> StudentPose:
        """Frame tokens (B, W, dim) and centroids (B, W, 3) (``frame_centroids``) of one window,
        newest last -> the pose of each of its frames (of the newest alone, W = 1 in the result, with
        ``newest_only``)."""
        batch, window = tokens.shape[:2]
        if window > self.config.window:
            raise ValueError(f"the student sees at most {self.config.window} frames, got {window}")
        anchors = self.anchors(centroids).to(tokens.dtype)
        tokens = tokens + self.frame_position[-window:]
        if self.config.centred:
            tokens = tokens + self.anchor_motion(anchors - anchors[:, -1:])
        hidden = self.norm(self.temporal(tokens))                                       # (B, W, dim)
        if newest_only:
            hidden, anchors, window = hidden[:, -1:], anchors[:, -1:], 1
        root = anchors + self.root_head(hidden)
        relative = self.joint_head(hidden).view(batch, window, self.predicted_joints, 3)
        joints = root.unsqueeze(2) + relative
        if not self.config.rotations:
            return StudentPose(root, joints)
        twist = nn.functional.normalize(self.twist_head(hidden).view(batch, window, 23, 2), dim=-1)
        return StudentPose(root, joints[:, :, :len(self.joint_set)], twist, self.beta_head(hidden), joints)

    def forward(self, points: torch.Tensor, mask: torch.Tensor) -> StudentPose:
        """Points (B, T, N, 5) and mask (B, T, N) -> the pose of each frame of each window. Up to W
        frames are one window (poses (B, T, ...)); a longer stretch is every window of W frames in
        it, each frame encoded once (poses (B * (T - W + 1), W, ...), see ``windows_of``)."""
        centroids = frame_centroids(points, mask)
        tokens = self.encode(points, mask, centroids)
        if tokens.shape[1] > self.config.window:
            tokens, centroids = windows_of(tokens, self.config.window), windows_of(centroids, self.config.window)
        return self.decode(tokens, centroids)


def frame_centroids(points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The centroid (..., 3) of each frame's real points, points (..., N, 5) and mask (..., N); NaN
    for a frame without points."""
    weight = mask.unsqueeze(-1).to(points.dtype)
    return (points[..., :3] * weight).sum(dim=-2) / weight.sum(dim=-2)


def centre_points(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Points (..., N, 5) with x, y, z relative to their frame's centroid (..., 3) (a frame without
    points, NaN centroid, is left as it is), as a centred student's encoder sees them."""
    return torch.cat([points[..., :3] - centroids.nan_to_num(0.0).unsqueeze(-2), points[..., 3:]], dim=-1)


def windows_of(x: torch.Tensor, window: int) -> torch.Tensor:
    """Every run of ``window`` consecutive frames: (B, T, ...) -> (B * (T - window + 1), window, ...),
    windows of one stretch next to each other, oldest first."""
    runs = x.unfold(1, window, 1)                                   # (B, S, ..., window)
    runs = runs.movedim(-1, 2)                                      # (B, S, window, ...)
    return runs.reshape(-1, window, *x.shape[2:])
