"""Published body proportions: where joints sit, how heavy and how thick each segment is.

Heights and lengths are fractions of standing height H, after Drillis and Contini (1966) as
tabulated by Winter, "Biomechanics and Motor Control of Human Movement" (4th ed., 2009, fig. 4.1):
shoulder (acromion) 0.818 H, elbow 0.630 H, wrist 0.485 H, hip 0.530 H, knee 0.285 H, ankle
0.039 H, upper arm 0.186 H, forearm 0.146 H, hand 0.108 H, foot length 0.152 H, shoulder width
0.259 H, hip width 0.191 H. Joint centres lie inside those landmarks (the shoulder joint ~2.5 cm
medial of the acromion, the hip joint centres ~0.11 H apart). Segment mass fractions follow
Dempster (1955) via Winter (2009, table 4.1); segment radii are circumferences over 2 pi from
adult anthropometric surveys (ANSUR II means), as fractions of H.

Each SMPL joint drives one segment: the one from the joint to its child (the pelvis drives the
pelvis, a hip the thigh, a knee the shank, an ankle the rear foot, a foot the toes, ...).
"""
from __future__ import annotations

# Rest joint positions for H = 1, SMPL's canonical frame (x: the body's left, y: up, z: forward),
# T-pose, standing on the floor at y = 0: (x, y, z) for the left side; right joints mirror x.
REST_FRACTIONS: dict[str, tuple[float, float, float]] = {
    "pelvis": (0.0, 0.555, -0.005),
    "left_hip": (0.055, 0.505, -0.008),
    "spine1": (0.0, 0.625, -0.015),
    "left_knee": (0.058, 0.285, 0.0),
    "spine2": (0.0, 0.700, -0.010),
    "left_ankle": (0.062, 0.039, -0.020),
    "spine3": (0.0, 0.735, 0.010),
    "left_foot": (0.070, 0.012, 0.065),
    "neck": (0.0, 0.855, -0.015),
    "left_collar": (0.040, 0.830, -0.005),
    "head": (0.0, 0.905, 0.010),
    "left_shoulder": (0.105, 0.815, -0.012),
    "left_elbow": (0.291, 0.815, -0.020),       # shoulder + upper arm 0.186
    "left_wrist": (0.437, 0.815, -0.020),       # elbow + forearm 0.146
    "left_hand": (0.487, 0.815, -0.020),        # the knuckles, half the hand on
    "head_top": (0.0, 1.000, 0.005),
    "left_middle_tip": (0.545, 0.815, -0.020),  # wrist + hand 0.108
    "left_big_toe": (0.058, 0.005, 0.105),      # the foot's front, 0.152 H from the heel
}

# Share of body mass carried by the segment each SMPL joint drives (sums to 1).
MASS_FRACTIONS: dict[str, float] = {
    "pelvis": 0.142, "left_hip": 0.100, "right_hip": 0.100, "spine1": 0.070,
    "left_knee": 0.0465, "right_knee": 0.0465, "spine2": 0.069, "left_ankle": 0.0125,
    "right_ankle": 0.0125, "spine3": 0.196, "left_foot": 0.002, "right_foot": 0.002,
    "neck": 0.020, "left_collar": 0.010, "right_collar": 0.010, "head": 0.061,
    "left_shoulder": 0.028, "right_shoulder": 0.028, "left_elbow": 0.016, "right_elbow": 0.016,
    "left_wrist": 0.004, "right_wrist": 0.004, "left_hand": 0.002, "right_hand": 0.002,
}

# Radius of the segment each SMPL joint drives, fraction of H (circumference / 2 pi / H).
RADIUS_FRACTIONS: dict[str, float] = {
    "pelvis": 0.085, "left_hip": 0.040, "right_hip": 0.040, "spine1": 0.078,
    "left_knee": 0.030, "right_knee": 0.030, "spine2": 0.080, "left_ankle": 0.025,
    "right_ankle": 0.025, "spine3": 0.085, "left_foot": 0.015, "right_foot": 0.015,
    "neck": 0.030, "left_collar": 0.030, "right_collar": 0.030, "head": 0.055,
    "left_shoulder": 0.024, "right_shoulder": 0.024, "left_elbow": 0.020, "right_elbow": 0.020,
    "left_wrist": 0.015, "right_wrist": 0.015, "left_hand": 0.010, "right_hand": 0.010,
}

BODY_MASS_INDEX = 23.0       # kg / m^2, for a default body mass from height
DEFAULT_HEIGHT = 1.70        # m
