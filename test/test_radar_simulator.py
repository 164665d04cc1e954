"""The radar simulator: geometry, Doppler, field of view, occlusion, clutter, ghosts, determinism."""
import math

import numpy as np
import pytest
import torch

from ros2_radar_pose.body.joint_sets import HYBRIK_29, KINECT_25, MARS_19
from ros2_radar_pose.body.models import AnthropometricBody
from ros2_radar_pose.radar.simulator import (
    BODY,
    CLUTTER,
    FALSE_ALARM,
    GHOST,
    Capsules,
    RadarSimConfig,
    RadarSimulator,
    capsules_for,
)

FPS = 20.0
# A radar that reports what is there: no clutter, ghosts or false alarms, fine angles, strong echoes.
CLEAN = RadarSimConfig(scene=(), multipath_planes=(), false_alarms_per_frame=0.0, angle_noise_floor_deg=0.0,
                       doppler_spread=0.0, static_clutter_removal=False, angle_fft_bins=0, max_points=1000,
                       elevation_resolution_deg=15.0, snr_1m_db=70.0, cfar_threshold_db=10.0)


def standing_person(frames: int, x: float = 2.5, y: float = 0.0, velocity=(0.0, 0.0, 0.0)) -> np.ndarray:
    """HYBRIK_29 joints (T, 29, 3) of a T-posed adult facing the radar (at the world origin, looking
    along +x), feet on the floor, moving at ``velocity`` m/s."""
    rest = AnthropometricBody().rest_joints(torch.zeros(1, 4, dtype=torch.float64))[0].numpy()
    # SMPL canonical (x left, y up, z forward) -> world, facing -x: forward -> -x, left -> -y, up -> z
    world = rest @ np.array([[0, -1, 0], [0, 0, 1], [-1, 0, 0]], dtype=float)
    t = np.arange(frames)[:, None, None] / FPS
    return world[None] + np.array([x, y, 0.0]) + t * np.asarray(velocity)


def simulate(joints, config=CLEAN, seed=0):
    return RadarSimulator(capsules_for(HYBRIK_29, 1.70), config).simulate(joints, FPS, seed)


def body_points(frames) -> np.ndarray:
    return np.concatenate([c[lab == BODY] for c, lab in zip(frames.clouds, frames.labels)])


def to_world(points: np.ndarray, config: RadarSimConfig) -> np.ndarray:
    return points[:, :3] @ config.mount_rotation().T + np.asarray(config.mount_translation)


def test_body_points_lie_on_the_body_surface():
    joints = standing_person(20, velocity=(0.0, 0.5, 0.0))
    frames = simulate(joints)
    points = body_points(frames)
    assert len(points) > 20 * 10
    world = to_world(points, CLEAN)
    # within the person's box (T-pose: arms span ~1.7 m), allowing for range bins and the angle
    # noise of weak detections (elevation is coarse: one elevated transmitter)
    y_centre = joints[:, 0, 1].mean()
    low, high = np.percentile(world, 5, axis=0), np.percentile(world, 95, axis=0)
    assert -1.0 < low[1] - y_centre and high[1] - y_centre < 1.0
    assert -0.2 < low[2] and high[2] < 1.9
    assert 2.2 < low[0] and high[0] < 2.7
    assert np.all(np.abs(world[:, 0] - 2.5) < 0.6)
    # the front of the body faces the radar: points lie in front of the pelvis, not behind it
    assert np.median(world[:, 0]) < 2.5


def test_doppler_is_the_radial_velocity_quantised():
    # walking straight at the radar at 1 m/s: radial velocity -1 m/s -> bin -3 of 0.356 m/s
    frames = simulate(standing_person(20, x=3.0, velocity=(-1.0, 0.0, 0.0)))
    velocity = body_points(frames)[:, 3]
    assert np.median(velocity) == pytest.approx(-3 * CLEAN.velocity_resolution, abs=1e-6)
    assert np.mean(np.isclose(velocity, -3 * CLEAN.velocity_resolution, atol=1e-5)) > 0.7
    # every reported velocity sits on a Doppler bin
    bins = velocity / CLEAN.velocity_resolution
    np.testing.assert_allclose(bins, np.round(bins), atol=1e-4)


def test_fast_targets_alias_into_the_unambiguous_interval():
    # 2.5 m/s away exceeds 1.78 m/s: it shows at 2.5 - 3.56 = -1.06 m/s (bin -3)
    frames = simulate(standing_person(10, x=2.0, velocity=(2.5, 0.0, 0.0)))
    velocity = body_points(frames)[:, 3]
    assert np.all(np.abs(velocity) <= CLEAN.max_velocity + 1e-6)
    assert np.median(velocity) == pytest.approx(-3 * CLEAN.velocity_resolution, abs=1e-6)


def test_nothing_outside_the_field_of_view():
    beside = standing_person(10, x=0.2, y=2.5)                     # azimuth ~85 degrees
    assert sum(len(c) for c in simulate(beside).clouds) == 0
    far = standing_person(10, x=9.0)                               # beyond range_max
    assert sum(len(c) for c in simulate(far).clouds) == 0
    narrow = CLEAN.replace(azimuth_fov_deg=10.0)
    off_axis = standing_person(10, x=2.0, y=1.7)                   # azimuth 20-50 degrees, arms included
    assert sum(len(c) for c in simulate(off_axis, narrow).clouds) == 0
    assert sum(len(c) for c in simulate(off_axis).clouds) > 0


def test_a_nearer_surface_hides_what_is_behind_it():
    # two parallel vertical capsules on the boresight, the second 0.6 m behind the first
    joints = np.array([[[2.0, 0, 0.5], [2.0, 0, 1.5], [2.6, 0, 0.5], [2.6, 0, 1.5]]] * 10)
    capsules = Capsules(np.array([[0, 1], [2, 3]]), np.array([0.3, 0.1]), np.array([False, False]))
    config = CLEAN.replace(mount_translation=(0.0, 0.0, 1.0))
    hidden = RadarSimulator(capsules, config).simulate(joints, FPS, 0)
    seen = RadarSimulator(capsules, config.replace(occlusion=False)).simulate(joints, FPS, 0)
    far = lambda frames: sum(int(np.sum(c[:, 0] > 2.45)) for c in frames.clouds)  # noqa: E731
    assert far(hidden) == 0
    assert far(seen) > 0


def test_static_clutter_removal_and_walls():
    nobody = standing_person(10, x=20.0)                           # out of range: only the room
    room = RadarSimConfig(false_alarms_per_frame=0.0, multipath_planes=(), static_clutter_removal=False)
    frames = simulate(nobody, room)
    walls = np.concatenate(frames.clouds)
    assert len(walls) > 10 * 5
    assert all((lab == CLUTTER).all() for lab in frames.labels)
    assert np.all(walls[:, 3] == 0)                                # static: zero Doppler
    assert np.median(np.linalg.norm(walls[:, :3], axis=1)) > 3.0   # the room's walls and furniture
    removed = simulate(nobody, room.replace(static_clutter_removal=True))
    assert sum(len(c) for c in removed.clouds) < len(walls) / 5


def test_multipath_ghosts_are_mirror_images():
    config = CLEAN.replace(multipath_planes=(((0.0, 0.0, 0.0), (0.0, 0.0, 1.0)),), multipath_loss_db=0.0,
                           beam_elevation_deg=40.0)
    frames = simulate(standing_person(40, x=2.0, velocity=(0.0, 0.6, 0.0)), config)
    ghosts = np.concatenate([c[lab == GHOST] for c, lab in zip(frames.clouds, frames.labels)])
    assert len(ghosts) > 0
    height = to_world(ghosts, config)[:, 2]                        # below the floor, where the mirror puts them,
    assert np.median(height) < -0.3 and np.percentile(height, 90) < 0.0   # give or take the elevation noise


def test_false_alarms_follow_their_rate():
    config = CLEAN.replace(false_alarms_per_frame=3.0)
    frames = simulate(standing_person(200, x=20.0), config)
    alarms = sum(int(np.sum(lab == FALSE_ALARM)) for lab in frames.labels)
    assert 450 < alarms < 750                                      # Poisson(600): 6 sigma either side


def test_points_per_frame_like_a_ti_radar_at_10_to_30_hz():
    for fps in (10.0, 20.0, 30.0):
        t = np.arange(int(4 * fps))[:, None, None] / fps
        joints = standing_person(1) + np.array([0.0, 1.0, 0.0]) * 0.8 * np.sin(1.5 * t)   # side steps
        frames = RadarSimulator(capsules_for(HYBRIK_29, 1.70)).simulate(joints, fps, 0)
        counts = np.array([len(c) for c in frames.clouds])
        assert 5 <= np.median(counts) <= 100, (fps, counts)
        assert counts.max() <= RadarSimConfig().max_points


def test_a_seed_gives_the_same_clouds():
    joints = standing_person(70, velocity=(0.0, 0.5, 0.0))
    config = RadarSimConfig()
    first, again, other = simulate(joints, config, 3), simulate(joints, config, 3), simulate(joints, config, 4)
    for a, b in zip(first.clouds, again.clouds):
        np.testing.assert_array_equal(a, b)
    assert any(len(a) != len(b) or not np.array_equal(a, b) for a, b in zip(first.clouds, other.clouds))


def test_the_mount_pose_is_honoured():
    config = CLEAN.replace(mount_translation=(0.5, -0.3, 1.4), mount_rpy=(0.0, 0.15, 0.3))
    joints = standing_person(20, x=3.0, y=0.6, velocity=(0.0, 0.4, 0.0))
    points = to_world(body_points(simulate(joints, config)), config)
    centre = joints[:, 0].mean(axis=0)
    assert abs(np.median(points[:, 1]) - centre[1]) < 0.25
    assert abs(np.median(points[:, 0]) - centre[0]) < 0.3


def test_clouds_have_the_shared_layout():
    frames = simulate(standing_person(5, velocity=(0, 0.5, 0)), RadarSimConfig())
    for cloud in frames.clouds:
        assert cloud.dtype == np.float32 and cloud.shape[1] == 5
        assert np.isfinite(cloud).all()
    snr = np.concatenate(frames.clouds)[:, 4]
    assert snr.min() >= RadarSimConfig().cfar_threshold_db


def test_kinect_skeletons_get_capsules_too():
    capsules = capsules_for(KINECT_25, 1.75)
    assert len(capsules.bones) == 24 and capsules.end_caps.sum() >= 5
    with pytest.raises(ValueError, match="no capsule table"):
        capsules_for(MARS_19, 1.75)


@pytest.mark.parametrize("change, message", [
    ({"range_min": 9.0}, "range_min"),
    ({"velocity_resolution": 3.0}, "velocity_resolution"),
    ({"max_points": 0}, "max_points"),
    ({"azimuth_resolution_deg": 1.0}, "angle resolutions"),
    ({"no_such_thing": 1}, "unknown radar simulator parameters: no_such_thing"),
])
def test_bad_parameters_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        RadarSimConfig().replace(**change)


def test_bad_joints_are_refused():
    simulator = RadarSimulator(capsules_for(HYBRIK_29, 1.70))
    joints = standing_person(3)
    with pytest.raises(ValueError, match="NaN"):
        bad = joints.copy()
        bad[1, 4, 0] = math.nan
        simulator.simulate(bad, FPS)
    with pytest.raises(ValueError, match="joints have 20 joints"):
        simulator.simulate(joints[:, :20], FPS)
    with pytest.raises(ValueError, match=r"\(T, J, 3\)"):
        simulator.simulate(joints[0], FPS)
