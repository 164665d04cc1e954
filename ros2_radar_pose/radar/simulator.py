"""A TI-style FMCW MIMO radar simulator: moving skeletons in, point clouds like the TI demo's out.

What it models, frame by frame (every effect is a ``RadarSimConfig`` parameter):

1. **Body surface**: capsules along the bones (``Capsules``), sampled on a fixed grid of about one
   sample per ``surface_spacing``², with a random roll of the grid about each bone every frame so the
   grid never prints into the cloud. A sample's velocity interpolates its bone's end velocities
   (finite differences of the joints), so the Doppler of every surface point follows the limb motion.
2. **Visibility**: back faces culled; self-occlusion by an angular depth buffer (a sample hidden by a
   nearer one in the same ``occlusion_cell_deg`` cell is dropped); range, azimuth and elevation limits;
   a two-way Gaussian antenna pattern.
3. **Reflection**: each sample returns ``area x cos(incidence)^specular_exponent`` of surface, with a
   random phase; contributions add coherently inside a radar cell, which gives the Rayleigh
   fluctuation of a real target. SNR = ``snr_1m_db`` (1 m² of surface at normal incidence at 1 m)
   - 40 log10(range) + antenna gain.
4. **Cells and detection**: a cell is (range bin, Doppler bin); Doppler is aliased into
   ±``max_velocity``. Within a cell, contributions are grouped by angle bin (the angular resolution of
   the virtual array) and, as in the TI demo, the strongest angle peak is the cell's one point when
   its SNR passes the CFAR threshold. Range and velocity are the bin values; the angle is the peak's
   power-weighted angle plus noise that shrinks with SNR (Cramér-Rao-like), azimuth quantised to
   the angle FFT's bins. At most ``max_points`` per frame, strongest first.
5. **Environment**: static clutter from a ``StaticScene`` of reflective patches (walls, furniture,
   pre-aggregated into angle cells once); multipath ghosts as mirror images of the body across
   ``multipath_planes`` (floor, walls), attenuated by ``multipath_loss_db``; random false alarms.

Coordinates: the world frame is REP-103 (z up, floor at z = 0); the radar's mount gives its pose in
the world; clouds come out in the radar frame with ROS axes (x forward, y left, z up), as (N, 5)
float32 x, y, z, velocity, intensity (radar/points.py): velocity is the radial velocity in m/s,
positive moving away; intensity is the detection's SNR in dB, as ti_mmwave_rospkg publishes it.

Frames are simulated in fixed chunks from one seeded generator, so a seed gives the same clouds.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from scipy.spatial.transform import Rotation

from ros2_radar_pose.body import anthropometry as anthro
from ros2_radar_pose.body.joint_sets import HYBRIK_29, KINECT_25, SMPL_24, JointSet

# A label per output point: what produced it (for tests and statistics, not published).
BODY, CLUTTER, GHOST, FALSE_ALARM = 0, 1, 2, 3
LABELS = ("body", "clutter", "ghost", "false_alarm")

_CHUNK_FRAMES = 64  # fixed, so that a seed gives the same clouds whatever the length
_GHOST_STRIDE = 4
_NEGLIGIBLE_DB = 30.0


@dataclass(frozen=True)
class Capsules:
    """Capsules along a skeleton's bones: ``bones`` (B, 2) joint indices (from, to), ``radii`` (B,)
    in metres, ``end_caps`` (B,) bool: a hemisphere closes the ``to`` end (limb ends, head)."""

    bones: np.ndarray
    radii: np.ndarray
    end_caps: np.ndarray

    def __post_init__(self):
        if not (len(self.bones) == len(self.radii) == len(self.end_caps)):
            raise ValueError("capsules need one radius and one end-cap flag per bone")
        if np.any(np.asarray(self.radii) <= 0):
            raise ValueError("capsule radii must be positive")


# Which body segment (body/anthropometry.py RADIUS_FRACTIONS, named by its SMPL joint) each Kinect
# bone is, named by the bone's child joint. Kinect's bones from the spine to the shoulders span
# the upper trunk, so they take the trunk's girth, not the thin collar bone's.
_KINECT_SEGMENT = {
    "SpineMid": "spine1", "SpineShoulder": "spine3", "Neck": "neck", "Head": "head",
    "ShoulderLeft": "spine2", "ShoulderRight": "spine2", "ElbowLeft": "left_shoulder",
    "ElbowRight": "right_shoulder", "WristLeft": "left_elbow", "WristRight": "right_elbow",
    "HandLeft": "left_wrist", "HandRight": "right_wrist", "HandTipLeft": "left_hand",
    "HandTipRight": "right_hand", "ThumbLeft": "left_hand", "ThumbRight": "right_hand",
    "HipLeft": "pelvis", "HipRight": "pelvis", "KneeLeft": "left_hip", "KneeRight": "right_hip",
    "AnkleLeft": "left_knee", "AnkleRight": "right_knee", "FootLeft": "left_ankle", "FootRight": "right_ankle",
}


def capsules_for(joint_set: JointSet, height: float) -> Capsules:
    """Capsules of a person of ``height`` metres for a skeleton in ``joint_set`` order (HYBRIK_29,
    SMPL_24 or KINECT_25): one per bone, radius from published segment girths."""
    if joint_set.name in (HYBRIK_29.name, SMPL_24.name):
        segment_of = {j: joint_set.names[joint_set.parents[j]] for j in range(1, len(joint_set))}
    elif joint_set.name == KINECT_25.name:
        segment_of = {j: _KINECT_SEGMENT[joint_set.names[j]] for j in range(1, len(joint_set))}
    else:
        raise ValueError(f"no capsule table for joint set {joint_set.name!r}; "
                         f"use {HYBRIK_29.name}, {SMPL_24.name} or {KINECT_25.name}")
    has_child = np.zeros(len(joint_set), dtype=bool)
    has_child[[p for p in joint_set.parents if p >= 0]] = True
    children = sorted(segment_of)
    bones = np.array([(joint_set.parents[j], j) for j in children], dtype=np.int64)
    radii = np.array([anthro.RADIUS_FRACTIONS[segment_of[j]] * height for j in children])
    return Capsules(bones, radii, ~has_child[children])


@dataclass(frozen=True)
class Patch:
    """A flat reflective rectangle of the static scene: ``centre`` (3,) in the world, ``half_u`` and
    ``half_v`` (3,) its half-extent vectors, ``reflectivity_db`` relative to skin."""

    centre: tuple[float, float, float]
    half_u: tuple[float, float, float]
    half_v: tuple[float, float, float]
    reflectivity_db: float = 0.0


def default_room() -> tuple[Patch, ...]:
    """A 6 m x 6 m room seen from a radar on the middle of one wall: a back wall, two side walls, a
    cabinet, a table and a chair."""
    return (
        Patch((6.0, 0.0, 1.3), (0.0, 3.0, 0.0), (0.0, 0.0, 1.3), -10.0),         # back wall
        Patch((3.0, 3.0, 1.3), (3.0, 0.0, 0.0), (0.0, 0.0, 1.3), -10.0),         # left wall
        Patch((3.0, -3.0, 1.3), (3.0, 0.0, 0.0), (0.0, 0.0, 1.3), -10.0),        # right wall
        Patch((5.0, 2.2, 0.9), (0.0, 0.5, 0.0), (0.0, 0.0, 0.9), 2.0),           # metal cabinet
        Patch((4.6, -2.0, 0.75), (0.4, 0.0, 0.0), (0.0, 0.6, 0.0), -4.0),        # table top
        Patch((4.2, -2.0, 0.37), (0.0, 0.6, 0.0), (0.0, 0.0, 0.37), -4.0),       # table front
    )


@dataclass(frozen=True)
class RadarSimConfig:
    """Every effect of the simulator. Defaults: an IWR1443/IWR1843-like radar (77 GHz, 3 Tx x 4 Rx,
    ~3.4 GHz of chirp bandwidth) at 10-30 Hz, about 1 m above the floor, tuned so that a person 2 m
    away gives clouds like the MARS recordings (bench/sim_vs_real.py)."""

    # mounting: the radar's pose in the world (REP-103: x forward, z up; pitch > 0 tilts it down)
    mount_translation: tuple[float, float, float] = (0.0, 0.0, 1.0)
    mount_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # field of view and antenna pattern
    range_min: float = 0.3              # m
    range_max: float = 8.0              # m
    azimuth_fov_deg: float = 60.0       # half field of view
    elevation_fov_deg: float = 45.0
    beam_azimuth_deg: float = 50.0      # half-width at which the two-way gain is down 3 dB
    beam_elevation_deg: float = 10.0
    # resolution and estimation noise
    range_resolution: float = 0.0282    # m, the range FFT's bin (zero-padded)
    max_velocity: float = 1.78          # m/s, unambiguous; faster targets alias
    velocity_resolution: float = 0.356  # m/s
    azimuth_resolution_deg: float = 15.0    # 8 virtual antennas
    elevation_resolution_deg: float = 63.0  # one elevated transmitter
    angle_noise_floor_deg: float = 3.3      # estimation noise at very high SNR
    angle_fft_bins: int = 64            # azimuth quantised to the angle FFT's bins (0: continuous)
    # reflection and detection
    surface_spacing: float = 0.07       # m between surface samples on the capsules
    snr_1m_db: float = 57.0             # SNR of 1 m² of skin facing the radar at 1 m
    specular_exponent: float = 2.5      # reflected power ~ cos(incidence) ** this
    cfar_threshold_db: float = 3.0
    static_clutter_removal: bool = True  # the TI demo's option: subtract the mean over chirps
    clutter_removal_db: float = 20.0     # what is left of a zero-Doppler cell's power, below its own
    max_points: int = 64                # the TI demo's cap per frame
    occlusion: bool = True
    occlusion_cell_deg: float = 2.5
    occlusion_depth: float = 0.15       # m behind the nearest surface still seen (creeping waves)
    doppler_spread: float = 1.25        # radial velocity noise per sample, relative to its speed: the
    #                                     motion of clothes, hands and muscles a skeleton does not show
    # environment
    scene: tuple[Patch, ...] = field(default_factory=default_room)
    scene_spacing: float = 0.1          # m between samples on scene patches
    clutter_fluctuation_db: float = 3.0  # frame-to-frame spread of a static reflector's SNR
    multipath_planes: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = (
        ((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)),  # the floor: a point on it, its normal
        ((6.0, 0.0, 0.0), (-1.0, 0.0, 0.0)),  # the back wall
    )
    multipath_loss_db: float = 11.0     # one extra bounce
    false_alarms_per_frame: float = 0.7

    def __post_init__(self):
        checks = [
            (0 <= self.range_min < self.range_max, "range_min must be >= 0 and below range_max"),
            (0 < self.azimuth_fov_deg <= 90 and 0 < self.elevation_fov_deg <= 90,
             "azimuth_fov_deg and elevation_fov_deg must be in (0, 90]"),
            (self.beam_azimuth_deg > 0 and self.beam_elevation_deg > 0, "beam widths must be positive"),
            (self.range_resolution > 0, "range_resolution must be positive"),
            (0 < self.velocity_resolution <= self.max_velocity, "velocity_resolution must be in (0, max_velocity]"),
            (self.azimuth_resolution_deg >= 3 and self.elevation_resolution_deg >= 3,
             "angle resolutions must be at least 3 degrees"),
            (self.range_max / self.range_resolution < 4096, "range_max / range_resolution must stay below 4096 bins"),
            (self.angle_noise_floor_deg >= 0, "angle_noise_floor_deg must be >= 0"),
            (self.angle_fft_bins == 0 or self.angle_fft_bins >= 4, "angle_fft_bins must be 0 or at least 4"),
            (self.surface_spacing > 0 and self.scene_spacing > 0, "sample spacings must be positive"),
            (self.specular_exponent >= 0, "specular_exponent must be >= 0"),
            (self.max_points >= 1, "max_points must be at least 1"),
            (self.occlusion_cell_deg > 0 and self.occlusion_depth >= 0, "occlusion cell and depth must be positive"),
            (self.clutter_fluctuation_db >= 0 and self.multipath_loss_db >= 0 and self.clutter_removal_db >= 0,
             "fluctuation, losses and clutter removal must be >= 0"),
            (self.doppler_spread >= 0, "doppler_spread must be >= 0"),
            (self.false_alarms_per_frame >= 0, "false_alarms_per_frame must be >= 0"),
            (len(self.mount_translation) == 3 and len(self.mount_rpy) == 3, "mount pose takes 3 + 3 numbers"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ValueError("radar simulator parameters: " + "; ".join(problems))

    def replace(self, **changes) -> RadarSimConfig:
        """A copy with some parameters changed (validated)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown radar simulator parameters: {', '.join(unknown)}")
        return RadarSimConfig(**{**{n: getattr(self, n) for n in names}, **changes})

    def mount_rotation(self) -> np.ndarray:
        """(3, 3) world-from-radar rotation."""
        return Rotation.from_euler("xyz", self.mount_rpy).as_matrix()


@dataclass
class SimulatedFrames:
    """``clouds``: T arrays (N_t, 5) float32 in the radar frame; ``labels``: T arrays (N_t,) int8
    (BODY, CLUTTER, GHOST, FALSE_ALARM)."""

    clouds: list[np.ndarray]
    labels: list[np.ndarray]


@dataclass(frozen=True)
class _SurfaceGrid:
    """Fixed sample layout on the capsules: sample k lies on bone ``bone[k]`` at
    ``ca*a + cb*b + r*(c1*e1 + c2*e2 + cd*d)`` with area ``area[k]`` (at the layout's bone lengths)."""

    bone: np.ndarray
    ca: np.ndarray
    cb: np.ndarray
    theta: np.ndarray       # angle about the bone
    polar: np.ndarray       # 0 on the cylinder; the polar angle from the bone axis on an end cap
    area_per_length: np.ndarray   # cylinder samples: area / bone length; caps: 0
    cap_area: np.ndarray          # cap samples: their area; cylinder samples: 0


def _surface_grid(capsules: Capsules, lengths: np.ndarray, spacing: float) -> _SurfaceGrid:
    columns: dict[str, list[np.ndarray]] = {k: [] for k in _SurfaceGrid.__dataclass_fields__}
    for b, (radius, length, cap) in enumerate(zip(capsules.radii, lengths, capsules.end_caps)):
        around = max(6, int(round(2 * math.pi * radius / spacing)))
        along = max(1, int(round(length / spacing)))
        u = (np.arange(along) + 0.5) / along
        theta = 2 * math.pi * np.arange(around) / around
        uu, tt = np.meshgrid(u, theta, indexing="ij")
        n = uu.size
        columns["bone"].append(np.full(n, b))
        columns["ca"].append(1 - uu.ravel())
        columns["cb"].append(uu.ravel())
        columns["theta"].append(tt.ravel())
        columns["polar"].append(np.full(n, math.pi / 2))
        columns["area_per_length"].append(np.full(n, 2 * math.pi * radius / n))
        columns["cap_area"].append(np.zeros(n))
        if cap:
            rings = max(1, int(round(math.pi / 2 * radius / spacing)))
            polar = (np.arange(rings) + 0.5) / rings * (math.pi / 2)
            pp, tt = np.meshgrid(polar, theta, indexing="ij")
            weights = np.sin(pp.ravel())
            m = pp.size
            columns["bone"].append(np.full(m, b))
            columns["ca"].append(np.zeros(m))
            columns["cb"].append(np.ones(m))
            columns["theta"].append(tt.ravel())
            columns["polar"].append(pp.ravel())
            columns["area_per_length"].append(np.zeros(m))
            columns["cap_area"].append(2 * math.pi * radius ** 2 * weights / weights.sum())
    return _SurfaceGrid(**{k: np.concatenate(v).astype(np.int64 if k == "bone" else np.float32)
                           for k, v in columns.items()})


def _scene_samples(scene: Sequence[Patch], spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static scene samples: positions (S, 3), normals (S, 3), reflecting area (S,) in m²."""
    positions, normals, areas = [], [], []
    for patch in scene:
        centre, hu, hv = (np.asarray(v, dtype=np.float64) for v in (patch.centre, patch.half_u, patch.half_v))
        nu = max(1, int(round(2 * np.linalg.norm(hu) / spacing)))
        nv = max(1, int(round(2 * np.linalg.norm(hv) / spacing)))
        su, sv = np.meshgrid((np.arange(nu) + 0.5) / nu * 2 - 1, (np.arange(nv) + 0.5) / nv * 2 - 1, indexing="ij")
        positions.append(centre + su.reshape(-1, 1) * hu + sv.reshape(-1, 1) * hv)
        normal = np.cross(hu, hv)
        normals.append(np.tile(normal / np.linalg.norm(normal), (nu * nv, 1)))
        area = 4 * np.linalg.norm(hu) * np.linalg.norm(hv) / (nu * nv)
        areas.append(np.full(nu * nv, area * 10 ** (patch.reflectivity_db / 10)))
    if not positions:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(positions), np.concatenate(normals), np.concatenate(areas)


class RadarSimulator:
    """Simulate radar frames of one person moving in a static scene.

    ``simulate(joints, fps, rng)``: ``joints`` (T, J, 3) world positions of a skeleton matching
    ``capsules``; returns ``SimulatedFrames``. Joint velocities come from central differences, so give
    the whole sequence at once (or overlapping pieces).
    """

    def __init__(self, capsules: Capsules, config: RadarSimConfig | None = None):
        self.capsules = capsules
        self.config = config or RadarSimConfig()
        c = self.config
        # samples are float32: millimetres are plenty, and it halves the memory traffic
        self._world_from_radar = c.mount_rotation().astype(np.float32)
        self._mount = np.asarray(c.mount_translation, dtype=np.float32)
        self._planes = [(np.asarray(p, float), np.asarray(n, float) / np.linalg.norm(n)) for p, n in c.multipath_planes]
        self._clutter = self._aggregate_scene()

    # -- geometry -------------------------------------------------------------------------------
    def _to_radar(self, world: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> radar frame."""
        return (world - self._mount) @ self._world_from_radar

    def _aggregate_scene(self) -> dict[str, np.ndarray]:
        """Static scene, pre-summed into (range, angle) cells: its samples never move, so one
        aggregate per cell stands for them all (the body can still occlude it)."""
        c = self.config
        positions, normals, areas = _scene_samples(c.scene, c.scene_spacing)
        empty = {"position": np.zeros((0, 3), np.float32), "power": np.zeros(0), "spherical": (np.zeros(0),) * 3}
        if len(positions) == 0:
            return empty
        p = self._to_radar(positions)
        n = normals @ self._world_from_radar
        rng_, az, el = _spherical(p)
        u = p / rng_[:, None]
        cos_inc = np.abs(np.einsum("ij,ij->i", n, u))  # walls reflect from either side
        reflected = areas * cos_inc ** c.specular_exponent
        received = reflected * self._gain(az, el) / np.maximum(rng_, 1e-3) ** 4
        keep = self._in_view(rng_, az, el) & (received > 0)
        if not keep.any():
            return empty
        key = self._angle_key(np.floor(rng_[keep] / c.range_resolution).astype(np.int64), az[keep], el[keep])
        _, inverse = np.unique(key, return_inverse=True)
        weight = np.bincount(inverse, weights=received[keep])
        position = np.stack([np.bincount(inverse, weights=received[keep] * p[keep, i]) for i in range(3)], 1)
        # the range loss and antenna gain are applied with the body's, at the aggregate's position
        position = (position / weight[:, None]).astype(np.float32)
        return {"position": position, "power": np.bincount(inverse, weights=reflected[keep]),
                "spherical": _spherical(position)}

    def _gain(self, az: np.ndarray, el: np.ndarray) -> np.ndarray:
        """Two-way antenna power gain, 1 on boresight, 0.5 at the beam half-widths."""
        c = self.config
        return np.exp(-math.log(2) * ((az / math.radians(c.beam_azimuth_deg)) ** 2
                                      + (el / math.radians(c.beam_elevation_deg)) ** 2))

    def _in_view(self, rng_: np.ndarray, az: np.ndarray, el: np.ndarray) -> np.ndarray:
        c = self.config
        return ((rng_ >= c.range_min) & (rng_ < c.range_max) & (np.abs(az) <= math.radians(c.azimuth_fov_deg))
                & (np.abs(el) <= math.radians(c.elevation_fov_deg)))

    def _angle_key(self, range_bin: np.ndarray, az: np.ndarray, el: np.ndarray) -> np.ndarray:
        """One integer per (range bin, azimuth bin, elevation bin)."""
        c = self.config
        az_bin = np.floor(az / math.radians(c.azimuth_resolution_deg)).astype(np.int64) + 64
        el_bin = np.floor(el / math.radians(c.elevation_resolution_deg)).astype(np.int64) + 64
        return (range_bin * 128 + az_bin) * 128 + el_bin

    # -- body surface ---------------------------------------------------------------------------
    def _surface(self, joints: np.ndarray, velocities: np.ndarray, grid: _SurfaceGrid,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Samples of F frames: positions and velocities (F, S, 3) world, normals (F, S, 3), areas (F, S)."""
        caps = self.capsules
        a, b = joints[:, caps.bones[:, 0]], joints[:, caps.bones[:, 1]]          # (F, B, 3)
        axis = b - a
        length = np.linalg.norm(axis, axis=-1, keepdims=True)
        d = axis / np.maximum(length, 1e-9)
        # any unit vector across the bone will do: the grid's roll about the bone is random anyway
        helper = np.where(np.abs(d[..., 2:3]) < 0.9, np.float32([0, 0, 1]), np.float32([1, 0, 0]))
        e1 = np.cross(d, helper)
        e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
        e2 = np.cross(d, e1)
        roll = rng.random((joints.shape[0], len(caps.radii)), dtype=np.float32) * np.float32(2 * math.pi)  # (F, B)
        theta = grid.theta[None] + roll[:, grid.bone]                                          # (F, S)
        sin_polar = np.sin(grid.polar)
        c1, c2 = np.cos(theta) * sin_polar, np.sin(theta) * sin_polar
        cd = np.cos(grid.polar)
        normal = (c1[..., None] * e1[:, grid.bone] + c2[..., None] * e2[:, grid.bone]
                  + cd[None, :, None] * d[:, grid.bone])
        radius = caps.radii[grid.bone][None, :, None].astype(np.float32)
        position = (grid.ca[None, :, None] * a[:, grid.bone] + grid.cb[None, :, None] * b[:, grid.bone]
                    + radius * normal)
        va, vb = velocities[:, caps.bones[:, 0]], velocities[:, caps.bones[:, 1]]
        velocity = grid.ca[None, :, None] * va[:, grid.bone] + grid.cb[None, :, None] * vb[:, grid.bone]
        area = grid.area_per_length[None] * length[:, grid.bone, 0] + grid.cap_area[None]
        return position, velocity, normal, area

    # -- the radar ------------------------------------------------------------------------------
    def simulate(self, joints: np.ndarray, fps: float, rng: np.random.Generator | int | None = None,
                 progress=None, velocities: np.ndarray | None = None) -> SimulatedFrames:
        """Radar frames for a skeleton sequence ``joints`` (T, J, 3) in the world frame at ``fps``.

        ``velocities`` (T, J, 3) m/s: the joints' velocities, when known (e.g. one live frame at a
        time); by default central differences of ``joints``. ``progress(frames)`` is called as
        chunks of frames are done."""
        joints = np.asarray(joints, dtype=np.float64)
        if joints.ndim != 3 or joints.shape[2] != 3:
            raise ValueError(f"joints must be (T, J, 3), got {joints.shape}")
        if joints.shape[1] <= self.capsules.bones.max():
            raise ValueError(f"joints have {joints.shape[1]} joints; the capsules need {self.capsules.bones.max() + 1}")
        if not fps > 0:
            raise ValueError("fps must be positive")
        if not np.isfinite(joints).all():
            raise ValueError("joints contain NaN or infinite values")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        if velocities is None:
            velocities = np.gradient(joints, 1.0 / fps, axis=0) if len(joints) > 1 else np.zeros_like(joints)
        elif np.shape(velocities) != joints.shape or not np.isfinite(velocities).all():
            raise ValueError(f"velocities must be finite and shaped like joints {joints.shape}")
        joints, velocities = joints.astype(np.float32), velocities.astype(np.float32)
        caps = self.capsules
        lengths = np.median(np.linalg.norm(joints[:, caps.bones[:, 1]] - joints[:, caps.bones[:, 0]], axis=-1), axis=0)
        grid = _surface_grid(caps, lengths, self.config.surface_spacing)
        clouds: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        for start in range(0, len(joints), _CHUNK_FRAMES):
            stop = min(start + _CHUNK_FRAMES, len(joints))
            c, lab = self._chunk(joints[start:stop], velocities[start:stop], grid, rng)
            clouds += c
            labels += lab
            if progress is not None:
                progress(stop - start)
        return SimulatedFrames(clouds, labels)

    def _chunk(self, joints, velocities, grid, rng):
        c = self.config
        frames = len(joints)
        pos_w, vel_w, nrm_w, area = self._surface(joints, velocities, grid, rng)
        frame = np.repeat(np.arange(frames), pos_w.shape[1])
        parts = [self._reflecting(self._to_radar(pos_w), vel_w @ self._world_from_radar,
                                  nrm_w @ self._world_from_radar, area, frame, BODY)]
        # multipath: the body's mirror image across each plane, one bounce weaker
        # (every _GHOST_STRIDE-th sample, standing for its neighbours: ghosts are faint and blurred)
        pos_g, vel_g, nrm_g = (x[:, ::_GHOST_STRIDE] for x in (pos_w, vel_w, nrm_w))
        area_g = area[:, ::_GHOST_STRIDE] * (_GHOST_STRIDE * 10 ** (-c.multipath_loss_db / 10))
        frame_g = np.repeat(np.arange(frames), pos_g.shape[1])
        for point, n in self._planes:
            reflect = (np.eye(3) - 2 * np.outer(n, n)).astype(np.float32)
            in_front = ((pos_g - point) @ n).reshape(-1) > 0
            parts.append(self._reflecting(
                self._to_radar((pos_g - point) @ reflect + point), (vel_g @ reflect) @ self._world_from_radar,
                (nrm_g @ reflect) @ self._world_from_radar, area_g, frame_g, GHOST, in_front))
        # static clutter: one aggregate per cell, the same every frame
        n_clutter = len(self._clutter["power"])
        if n_clutter:
            power = np.tile(self._clutter["power"], frames)
            if c.clutter_fluctuation_db > 0:
                power = power * 10 ** (rng.normal(0, c.clutter_fluctuation_db, len(power)) / 10)
            position = np.tile(self._clutter["position"], (frames, 1))
            parts.append((position, np.zeros_like(position), power, np.repeat(np.arange(frames), n_clutter),
                          np.full(len(power), CLUTTER, np.int8),
                          *(np.tile(x, frames) for x in self._clutter["spherical"])))
        position, velocity, power, frame, source, rng_, az, el = (np.concatenate(column) for column in zip(*parts))
        if c.occlusion:  # hidden samples reflect nothing (and _detect drops them with the inaudible)
            power = power * self._unoccluded(frames, frame, rng_, az, el, source != GHOST)
        radial = np.einsum("ij,ij->i", velocity, position) / rng_
        if c.doppler_spread > 0:  # a moving limb's surface moves more than its bone says
            radial = radial + rng.normal(0, 1, len(radial)) * c.doppler_spread * np.linalg.norm(velocity, axis=1)
        # received power: range loss and the antenna pattern
        power = power * self._gain(az, el) / rng_ ** 4
        return self._detect(frames, frame, source, rng_, az, el, radial, power, rng)

    def _reflecting(self, position, velocity, normal, area, frame, source, mask=None):
        """Flattened samples (F, S, ...) facing the radar inside its field of view, with the surface
        they reflect: positions (N, 3), velocities (N, 3), reflected area (N,), frames (N,),
        sources (N,), and range, azimuth, elevation (N,)."""
        c = self.config
        position, velocity, normal = position.reshape(-1, 3), velocity.reshape(-1, 3), normal.reshape(-1, 3)
        rng_ = np.sqrt(np.einsum("ij,ij->i", position, position))
        cos_inc = -np.einsum("ij,ij->i", normal, position) / np.maximum(rng_, 1e-9)
        facing = cos_inc > 0                       # half the surface: the angles are worth only these
        if mask is not None:
            facing &= mask
        position, velocity, rng_, cos_inc = position[facing], velocity[facing], rng_[facing], cos_inc[facing]
        _, az, el = _spherical(position)
        keep = self._in_view(rng_, az, el)
        power = area.reshape(-1)[facing][keep] * cos_inc[keep] ** c.specular_exponent
        return (position[keep], velocity[keep], power, frame[facing][keep], np.full(len(power), source, np.int8),
                rng_[keep], az[keep], el[keep])

    def _unoccluded(self, frames, frame, rng_, az, el, occluders) -> np.ndarray:
        """Samples no further than ``occlusion_depth`` behind the nearest occluder in their angular cell."""
        c = self.config
        cell = math.radians(c.occlusion_cell_deg)
        n_az = int(math.ceil(2 * math.radians(c.azimuth_fov_deg) / cell)) + 1
        n_el = int(math.ceil(2 * math.radians(c.elevation_fov_deg) / cell)) + 1
        az_cell = np.floor((az + math.radians(c.azimuth_fov_deg)) / cell).astype(np.int64)
        el_cell = np.floor((el + math.radians(c.elevation_fov_deg)) / cell).astype(np.int64)
        key = (frame * n_el + el_cell) * n_az + az_cell
        nearest = np.full(frames * n_el * n_az, np.inf)
        np.minimum.at(nearest, key[occluders], rng_[occluders])
        return rng_ <= nearest[key] + c.occlusion_depth

    def _detect(self, frames, frame, source, rng_, az, el, radial, power, rng):
        """Cells, coherent sums, the strongest angle peak per cell, CFAR, estimation noise."""
        c = self.config
        range_bin = np.floor(rng_ / c.range_resolution).astype(np.int64)
        span = 2 * c.max_velocity
        n_doppler = int(round(span / c.velocity_resolution))
        aliased = (radial + c.max_velocity) % span - c.max_velocity
        doppler_bin = np.round(aliased / c.velocity_resolution).astype(np.int64) % n_doppler
        if c.static_clutter_removal:  # the demo subtracts the mean over chirps: zero Doppler is gone
            power = np.where(doppler_bin == 0, power * 10 ** (-c.clutter_removal_db / 10), power)
        # contributions 30 dB under the threshold cannot matter: a cell would need a thousand of them
        audible = power >= 10 ** ((c.cfar_threshold_db - _NEGLIGIBLE_DB - c.snr_1m_db) / 10)
        frame, source, range_bin, doppler_bin, az, el, power = (
            x[audible] for x in (frame, source, range_bin, doppler_bin, az, el, power))
        cell = (frame * 4096 + range_bin) * n_doppler + doppler_bin
        peak_key = self._angle_key(cell, az, el)
        # coherent sum with a random phase per contribution: Rayleigh fading of a many-scatterer cell
        phase = rng.uniform(0, 2 * math.pi, len(power))
        amplitude = np.sqrt(power)
        uniq, inverse = np.unique(peak_key, return_inverse=True)
        re = np.bincount(inverse, weights=amplitude * np.cos(phase))
        im = np.bincount(inverse, weights=amplitude * np.sin(phase))
        peak_power = re * re + im * im
        weight = np.bincount(inverse, weights=power)
        mean_az = np.bincount(inverse, weights=power * az) / weight
        mean_el = np.bincount(inverse, weights=power * el) / weight
        peak_source = np.zeros(len(uniq), np.int8)
        np.maximum.at(peak_source, inverse, source)  # a body contribution (0) shows only when alone
        body_weight = np.bincount(inverse, weights=power * (source == BODY))
        peak_source[body_weight >= 0.5 * weight] = BODY
        # the strongest angle peak of each range-Doppler cell
        peak_cell = uniq >> 14                      # sorted, as uniq is: each cell is one run
        best = _strongest_of_runs(peak_cell, peak_power)
        snr_db = c.snr_1m_db + 10 * np.log10(np.maximum(peak_power[best], 1e-30))
        detected = snr_db >= c.cfar_threshold_db
        best, snr_db = best[detected], snr_db[detected]
        p_cell = peak_cell[best]
        p_frame = p_cell // n_doppler // 4096
        p_range = ((p_cell // n_doppler) % 4096 + 0.5) * c.range_resolution
        p_doppler = p_cell % n_doppler
        p_velocity = np.where(p_doppler > n_doppler // 2, p_doppler - n_doppler, p_doppler) * c.velocity_resolution
        snr_lin = 10 ** (snr_db / 10)
        noise_az = np.hypot(math.radians(c.azimuth_resolution_deg) / np.sqrt(2 * snr_lin),
                            math.radians(c.angle_noise_floor_deg))
        noise_el = np.hypot(math.radians(c.elevation_resolution_deg) / np.sqrt(2 * snr_lin),
                            math.radians(c.angle_noise_floor_deg))
        p_az = mean_az[best] + rng.normal(0, 1, len(best)) * noise_az
        p_el = mean_el[best] + rng.normal(0, 1, len(best)) * noise_el
        sin_az = np.sin(p_az)
        if c.angle_fft_bins:
            sin_az = np.clip(np.round(sin_az * c.angle_fft_bins / 2) / (c.angle_fft_bins / 2), -1, 1)
        cos_el = np.cos(p_el)
        xyz = np.stack([p_range * cos_el * np.sqrt(1 - sin_az ** 2), p_range * cos_el * sin_az,
                        p_range * np.sin(p_el)], axis=1)
        points = np.concatenate([xyz, p_velocity[:, None], snr_db[:, None]], axis=1).astype(np.float32)
        sources = peak_source[best]
        points, sources, p_frame = self._false_alarms(frames, points, sources, p_frame, rng)
        return self._per_frame(frames, points, sources, p_frame)

    def _false_alarms(self, frames, points, sources, frame, rng):
        c = self.config
        count = rng.poisson(c.false_alarms_per_frame, frames)
        total = int(count.sum())
        if total == 0:
            return points, sources, frame
        r = rng.uniform(c.range_min, c.range_max, total)
        az = rng.uniform(-1, 1, total) * math.radians(c.azimuth_fov_deg)
        el = rng.uniform(-1, 1, total) * math.radians(c.elevation_fov_deg)
        v = np.round(rng.uniform(-1, 1, total) * c.max_velocity / c.velocity_resolution) * c.velocity_resolution
        snr = c.cfar_threshold_db + rng.exponential(2.0, total)
        fa = np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el), v, snr], 1)
        return (np.concatenate([points, fa.astype(np.float32)]),
                np.concatenate([sources, np.full(total, FALSE_ALARM, np.int8)]),
                np.concatenate([frame, np.repeat(np.arange(frames), count)]))

    def _per_frame(self, frames, points, sources, frame):
        """Split into frames, keeping each frame's ``max_points`` strongest detections."""
        order = np.lexsort((-points[:, 4], frame))
        points, sources, frame = points[order], sources[order], frame[order]
        bounds = np.searchsorted(frame, np.arange(frames + 1))
        cap = self.config.max_points
        clouds, labels = [], []
        for t in range(frames):
            lo, hi = bounds[t], min(bounds[t + 1], bounds[t] + cap)
            clouds.append(points[lo:hi])
            labels.append(sources[lo:hi])
        return clouds, labels


def _strongest_of_runs(run_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the largest value in each run of equal ``run_keys`` (sorted), (runs,)."""
    if len(run_keys) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, run_keys[1:] != run_keys[:-1]])
    strongest = np.maximum.reduceat(values, starts)
    candidates = np.flatnonzero(values == np.repeat(strongest, np.diff(np.r_[starts, len(values)])))
    run = np.searchsorted(starts, candidates, side="right")
    return candidates[np.r_[True, run[1:] != run[:-1]]]


def _spherical(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Range, azimuth (from x towards y) and elevation of (N, 3) points."""
    horizontal = np.hypot(p[:, 0], p[:, 1])
    return np.hypot(horizontal, p[:, 2]), np.arctan2(p[:, 1], p[:, 0]), np.arctan2(p[:, 2], horizontal)
