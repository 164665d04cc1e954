"""MARS recordings as a rosbag2 bag: the path a user's own recordings take into training.

Each frame's cloud goes on ``/radar/points`` (ti_mmwave_rospkg's layout, ROS axes, frame
``radar_link``) and its Kinect skeleton, reduced to the MARS-19 joint set the MARS paper scores,
on the label topic (the teacher's, by default) with the same stamp. Recordings follow each other
in one bag, ``RECORDING_GAP_NS`` apart, so no window of frames spans two of them; within a
recording, stamps are MARS's own frame times (data/mars.py), gaps in its frame numbers included.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ros2_radar_pose import topics
from ros2_radar_pose.body.joint_sets import MARS_19, mapping
from ros2_radar_pose.data.bags import BagWriter
from ros2_radar_pose.data.mars import MarsRecording
from ros2_radar_pose.data.synthetic import START_NS

RECORDING_GAP_NS = 10 * 10**9


def write_mars_bag(path: str | Path, recordings: Iterable[MarsRecording], storage: str = "mcap", version: int = 9,
                   label_topic: str = topics.TEACHER_SKELETON, frame_id: str = topics.RADAR_FRAME,
                   overwrite: bool = False, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Write MARS recordings into a new bag; returns messages written per topic."""
    to_mars19 = mapping(MarsRecording.joint_set, MARS_19)
    counts = {topics.RADAR_POINTS: 0, label_topic: 0}
    start = START_NS
    with BagWriter(path, storage=storage, version=version, overwrite=overwrite) as writer:
        for recording in recordings:
            skeletons = to_mars19.apply(recording.skeletons)                      # (T, 19, 3)
            offsets = ((recording.stamps - recording.stamps[0]) * 1e9).round().astype("int64")
            for t, offset in enumerate(offsets.tolist()):
                stamp = start + offset
                writer.write_cloud(topics.RADAR_POINTS, stamp, frame_id, recording.clouds[t])
                writer.write_skeleton(label_topic, stamp, frame_id, skeletons[t])
            counts[topics.RADAR_POINTS] += len(recording)
            counts[label_topic] += len(recording)
            start += int(offsets[-1]) + RECORDING_GAP_NS if len(offsets) else 0
            if progress is not None:
                progress(len(recording))
    return counts
