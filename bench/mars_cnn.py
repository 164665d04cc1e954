"""The MARS paper's CNN, re-implemented in PyTorch as the benchmark's yardstick.

MARS (An & Ogras, "MARS: mmWave-based Assistive Rehabilitation System for Smart Healthcare", ACM
TECS 20(5s), 2021) regresses 19 Kinect joints from one radar frame with a small CNN over an
8 x 8 x 5 "feature map". Sources, detail by detail ("paper": the article's text; "code":
``MARS_model.py`` of github.com/SizheAn/MARS, the only code the repository publishes; "keras":
defaults of Keras 2.3.0 / TensorFlow 2.2, the versions that code names):

Feature map (``mars_feature_map``; the repository ships features but no code that makes them)
- paper: the points of a frame sorted by x, then y, then z, zero-padded to 64 and reshaped to
  8 x 8 with channels x, y, z, Doppler, intensity; README: a (frames, 8, 8, 5) array, channels in
  that order. Sorted here lexicographically and laid out row-major (point k at row k // 8,
  column k % 8), as numpy's reshape of a (64, 5) array gives.
- The axes are MARS's (TI's): x lateral (right), y depth, z up. The clouds this module receives are
  in ROS axes (data/mars.py, ``ti_to_ros_axes``), so x_mars = -y_ros, y_mars = x_ros, z = z.
- Doppler: data/mars.py copies it unchanged (m/s, positive away), so it is used as is.
- Intensity: data/mars.py stores ``10 log10(1 + peak)`` dB of the csv's linear CFAR peak;
  ``10 ** (dB / 10) - 1`` inverts that exactly (on MARS's files the float32 round trip lands
  within 2e-4 of the integer peak, so nothing is rounded). The feature files themselves are not
  public, so that they hold the csv's raw peak (and raw x, y, z, Doppler) is inferred from the
  README's channel list and from the code, which scales no channel; none is scaled here either.
- More than 64 points: never happens in MARS (subjects 1 and 3 have 1 to 64 points a frame,
  apparently the radar's own cap), so no source says what to drop. Here the 64 strongest points
  are kept (ties: earlier points), then sorted. An empty cloud gives an all-zero map.

Network (``MarsCNN``), code, which the paper's summary matches:
- Conv2d 16 (3 x 3, stride 1, padding 'same', ReLU), Dropout 0.3, Conv2d 32 (same), Dropout 0.3,
  BatchNorm (momentum 0.95), Flatten, Dense 512 (ReLU), BatchNorm (momentum 0.95), Dropout 0.4,
  Dense 57 (linear). Short summaries of the paper (conv, conv, BatchNorm, dense 512, dropout,
  dense 57) leave out the second BatchNorm; the code has it, and so does this model.
- keras: element-wise dropout (not channel-wise); BatchNorm epsilon 1e-3 and Keras momentum 0.95
  (PyTorch's momentum is 1 - that, 0.05); Glorot-uniform kernels and zero biases; Flatten in
  (row, column, channel) order, kept here by flattening channels-last.

Labels, code and README: 57 values, the x of the 19 joints, then their y, then their z (the code
slices ``[:, 0:19]`` as x for its per-axis MAE), in MARS's axes and metres, regressed directly with
no normalisation. ``to_mars_labels`` / ``from_mars_labels`` convert (T, 19, 3) ROS joints.

Training (``train_mars_cnn``):
- code: MSE loss; Adam lr 1e-3, beta_1 0.5; batch 128; 150 epochs; keras: beta_2 0.999, epsilon
  1e-7 (Keras adds it to sqrt(v) before bias correction, PyTorch after: a negligible difference),
  batches reshuffled every epoch, the last one partial.
- code: no early stopping and no best-epoch checkpoint: the validation split is passed to ``fit``
  only to plot its curves, and the model after the last epoch is scored. (The code repeats
  training 10 times and reports the mean of the 10 test scores; this module trains once.)
- Differences: a final batch of a single frame is skipped, since PyTorch's BatchNorm cannot
  train on one sample (Keras would). MARS trains on its 'train' split of all four subjects (24066
  frames, about 28000 Adam steps in 150 epochs); the benchmark trains on what it has (subjects 1
  and 3 'validate': 4157 frames, 4950 steps), and the recipe, fixed in epochs, is then far from
  converged: lr 1e-3 must first carry the output biases to the 2 m depth and quiet the noise of
  dropout in front of BatchNorm and of the output layer.

    ./dev.sh run python -m bench.mars_cnn [--epochs 150] [--threads 2]

trains on MARS subjects 1 and 3 'validate' (variant woutlier), scores on their 'test', and prints
one JSON line: frames, training seconds and the MAE per MARS axis in cm.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

GRID = 8                          # the map is GRID x GRID points
MAX_POINTS = GRID * GRID
CHANNELS = 5                      # x, y, z (MARS axes), Doppler, linear intensity
N_JOINTS = 19


def _ros_to_mars(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) ROS axes (x forward, y left, z up) -> MARS/TI axes (x right, y depth, z up)."""
    return np.stack([-xyz[..., 1], xyz[..., 0], xyz[..., 2]], axis=-1)


def _mars_to_ros(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) MARS/TI axes -> ROS axes; the inverse of ``_ros_to_mars``."""
    return np.stack([xyz[..., 1], -xyz[..., 0], xyz[..., 2]], axis=-1)


def mars_feature_map(clouds: Sequence[np.ndarray]) -> np.ndarray:
    """MARS's input: each cloud as up to 64 points sorted by x, y, z (MARS axes), zero-padded.

    ``clouds``: T arrays (N_t, 5) x, y, z, velocity, intensity (radar/points.py layout: ROS axes,
    metres, m/s, intensity ``10 log10(1 + peak)`` dB). Returns (T, 8, 8, 5) float32 channels-last
    (MARS's ``featuremap_*.npy`` layout), channels x, y, z (MARS axes), Doppler, linear peak.
    """
    out = np.zeros((len(clouds), MAX_POINTS, CHANNELS), dtype=np.float32)
    for t, cloud in enumerate(clouds):
        cloud = np.asarray(cloud, dtype=np.float64).reshape(-1, CHANNELS)
        if len(cloud) > MAX_POINTS:       # keep the strongest (never needed on MARS's own data)
            cloud = cloud[np.sort(np.argsort(-cloud[:, 4], kind="stable")[:MAX_POINTS])]
        points = np.concatenate([_ros_to_mars(cloud[:, :3]), cloud[:, 3:4],
                                 10.0 ** (cloud[:, 4:5] / 10.0) - 1.0], axis=1)
        order = np.lexsort((points[:, 2], points[:, 1], points[:, 0]))    # last key sorts first
        out[t, :len(points)] = points[order]
    return out.reshape(len(clouds), GRID, GRID, CHANNELS)


def to_mars_labels(joints: np.ndarray) -> np.ndarray:
    """(T, J, 3) joints in ROS axes -> (T, 3J) MARS labels: all x, then all y, then all z (MARS axes)."""
    joints = np.asarray(joints, dtype=np.float32)
    return np.ascontiguousarray(_ros_to_mars(joints).transpose(0, 2, 1).reshape(len(joints), -1))


def from_mars_labels(labels: np.ndarray) -> np.ndarray:
    """(T, 3J) MARS labels -> (T, J, 3) joints in ROS axes; the inverse of ``to_mars_labels``."""
    labels = np.asarray(labels, dtype=np.float32)
    return np.ascontiguousarray(_mars_to_ros(labels.reshape(len(labels), 3, labels.shape[1] // 3).transpose(0, 2, 1)))


class MarsCNN(nn.Module):
    """MARS's CNN: two 3 x 3 convolutions over the 8 x 8 point map, then a 512-unit dense layer.

    ``forward``: (B, 8, 8, 5) feature maps (``mars_feature_map``) -> (B, 3 * n_joints) MARS labels
    (``from_mars_labels`` turns them into joints). Keras's layers and initialisation (module
    docstring); call ``eval()`` to predict with BatchNorm's running statistics and no dropout.
    """

    def __init__(self, n_joints: int = N_JOINTS):
        super().__init__()
        self.n_joints = n_joints
        self.features = nn.Sequential(
            nn.Conv2d(CHANNELS, 16, 3, padding=1), nn.ReLU(), nn.Dropout(0.3),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Dropout(0.3),
            nn.BatchNorm2d(32, eps=1e-3, momentum=0.05),
        )
        self.head = nn.Sequential(
            nn.Linear(32 * MAX_POINTS, 512), nn.ReLU(),
            nn.BatchNorm1d(512, eps=1e-3, momentum=0.05), nn.Dropout(0.4),
            nn.Linear(512, 3 * n_joints),
        )
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):    # Keras: glorot_uniform, zero bias
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        hidden = self.features(feature_map.permute(0, 3, 1, 2))
        return self.head(hidden.permute(0, 2, 3, 1).flatten(1))     # Keras flattens channels-last


def train_mars_cnn(train_clouds: Sequence[np.ndarray], train_labels: np.ndarray, epochs: int = 150,
                   batch_size: int = 128, seed: int = 0, progress: bool = True,
                   device: str | torch.device = "cpu") -> MarsCNN:
    """Train a ``MarsCNN`` as MARS does (module docstring); returns it in eval mode on ``device``.

    ``train_clouds``: T clouds (N_t, 5) in this package's layout (``mars_feature_map``);
    ``train_labels``: (T, J, 3) joints in ROS axes, metres. The same seed gives the same model on
    the same device and thread count; the caller's global RNG state is left as it was.
    """
    features = torch.from_numpy(mars_feature_map(train_clouds))
    targets = torch.from_numpy(to_mars_labels(train_labels))
    if len(features) != len(targets):
        raise ValueError(f"{len(features)} clouds but {len(targets)} label frames")
    if len(features) < 2 or batch_size < 2:
        raise ValueError(f"BatchNorm trains on batches of 2 frames or more: got {len(features)} frames, "
                         f"batch_size {batch_size}")
    device = torch.device(device)
    features, targets = features.to(device), targets.to(device)
    shuffle = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)                                  # initialisation and dropout
        model = MarsCNN(n_joints=targets.shape[1] // 3).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999), eps=1e-7)
        model.train()
        bar = tqdm(range(epochs), desc="MARS CNN", unit="epoch", disable=not progress, leave=False)
        for _ in bar:
            order = torch.randperm(len(features), generator=shuffle).to(device)
            total, seen = torch.zeros((), device=device), 0
            for batch in order.split(batch_size):
                if len(batch) < 2:                  # BatchNorm1d cannot train on one sample
                    continue
                loss = F.mse_loss(model(features[batch]), targets[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, seen = total + loss.detach() * len(batch), seen + len(batch)
            if progress:
                bar.set_postfix(mse=f"{total.item() / seen:.2e}")
    return model.eval()


@torch.no_grad()
def predict_mars_cnn(model: MarsCNN, clouds: Sequence[np.ndarray], batch_size: int = 1024) -> np.ndarray:
    """Joints (T, J, 3) float32 in ROS axes, metres, for T clouds (N_t, 5); the model is left in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    features = torch.from_numpy(mars_feature_map(clouds))
    labels = [model(chunk.to(device)).cpu() for chunk in features.split(batch_size)]
    return from_mars_labels(torch.cat(labels).numpy() if labels else np.zeros((0, 3 * model.n_joints)))


def main(argv: Sequence[str] | None = None) -> dict:
    from ros2_radar_pose.body.joint_sets import KINECT25_TO_MARS19
    from ros2_radar_pose.data.mars import load_mars

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--variant", default="woutlier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    def load(split: str) -> tuple[list[np.ndarray], np.ndarray]:
        recordings = [load_mars(subject, split, args.variant) for subject in (1, 3)]
        clouds = [cloud for recording in recordings for cloud in recording.clouds]
        joints = np.concatenate([KINECT25_TO_MARS19.apply(r.skeletons) for r in recordings])
        return clouds, joints.astype(np.float32)

    (train_clouds, train_joints), (test_clouds, test_joints) = load("validate"), load("test")
    start = time.perf_counter()
    model = train_mars_cnn(train_clouds, train_joints, epochs=args.epochs, seed=args.seed, device=args.device)
    seconds = time.perf_counter() - start
    error = np.abs(_ros_to_mars(predict_mars_cnn(model, test_clouds)) - _ros_to_mars(test_joints))
    mean_pose = np.abs(_ros_to_mars(train_joints.mean(axis=0)) - _ros_to_mars(test_joints))
    result = {
        "train_frames": len(train_clouds), "test_frames": len(test_clouds), "variant": args.variant,
        "epochs": args.epochs, "threads": args.threads, "device": args.device,
        "train_seconds": round(seconds, 1),
        "mae_cm": dict(zip(("x_lateral", "y_depth", "z_up", "mean"),
                           (round(100 * float(e), 2) for e in (*error.mean(axis=(0, 1)), error.mean())))),
        "mean_pose_mae_cm": round(100 * float(mean_pose.mean()), 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
