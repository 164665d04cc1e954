"""Topic and frame names of the node graph (DESIGN.md), in one place for nodes, bags and tools.

Nodes take their topics as relative names ("radar_pose/points") so a namespace or a remap moves
them; these are the absolute names they resolve to in the default namespace, which is what bags
record.
"""
RADAR_POINTS = "/radar/points"
POINTS = "/radar_pose/points"
TEACHER_SKELETON = "/radar_pose/teacher/skeleton"
STUDENT_SKELETON = "/radar_pose/student/skeleton"
SKELETON = "/radar_pose/skeleton"
GROUND_TRUTH_SKELETON = "/radar_pose/ground_truth/skeleton"
MARKERS = "/radar_pose/markers"
TF = "/tf"
TF_STATIC = "/tf_static"
CLOCK = "/clock"
DIAGNOSTICS = "/diagnostics"

RADAR_FRAME = "radar_link"
WORLD_FRAME = "world"
