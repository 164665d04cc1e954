"""radar-pose import-mars: MARS recordings become a bag that reads back frame for frame."""
import subprocess

import numpy as np
import pytest
from conftest import console_script
from test_mars import write_mars

from ros2_radar_pose import topics
from ros2_radar_pose.body.joint_sets import KINECT_25, MARS_19
from ros2_radar_pose.data.bags import BagReader
from ros2_radar_pose.data.mars import load_mars
from ros2_radar_pose.data.mars_bag import RECORDING_GAP_NS, write_mars_bag
from ros2_radar_pose.data.sync import synchronized


def test_recordings_read_back_paired_frame_for_frame(tmp_path):
    write_mars(tmp_path / "mars", subject="subject1", split="test")
    write_mars(tmp_path / "mars", subject="subject3", split="test")
    recordings = [load_mars(s, "test", root=tmp_path / "mars") for s in (1, 3)]
    counts = write_mars_bag(tmp_path / "bag", recordings)
    assert counts == {topics.RADAR_POINTS: 6, topics.TEACHER_SKELETON: 6}
    with BagReader(tmp_path / "bag") as reader:
        pairs = list(synchronized(reader, others=(topics.TEACHER_SKELETON,)))
    assert len(pairs) == 6 and all(p.skeletons[topics.TEACHER_SKELETON] is not None for p in pairs)
    stamps = np.array([p.stamp_ns for p in pairs])
    # frame numbers 10, 11, 13: 0.1 s and 0.2 s apart; the second recording after the gap
    np.testing.assert_array_equal(np.diff(stamps[:3]), [100_000_000, 200_000_000])
    assert stamps[3] - stamps[2] == RECORDING_GAP_NS
    first = pairs[0]
    np.testing.assert_array_equal(first.primary.cloud, recordings[0].clouds[0])
    labels = first.skeletons[topics.TEACHER_SKELETON].positions
    assert labels.shape == (len(MARS_19), 3)
    spine_shoulder = recordings[0].skeletons[0, KINECT_25.index("SpineShoulder")]
    np.testing.assert_allclose(labels[MARS_19.index("SpineShoulder")], spine_shoulder, atol=1e-6)


@pytest.mark.slow
def test_import_mars_command(tmp_path):
    write_mars(tmp_path / "mars", subject="subject1", split="validate")
    command = [console_script("radar-pose"), "import-mars", str(tmp_path / "mars"), "--out", str(tmp_path / "bag"),
               "--subjects", "1", "--splits", "validate"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{topics.RADAR_POINTS} 3" in result.stdout and "MARS-19" in result.stdout
    missing = subprocess.run([*command[:-4], "--subjects", "7", "--overwrite"], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and "subject7" in missing.stderr and "Traceback" not in missing.stderr
