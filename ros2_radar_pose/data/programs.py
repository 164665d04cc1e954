"""Programs: long motions chaining many segments, random or by name.

``random_program`` makes a continuous motion of a subject wandering and exercising in front of
the radar: walks (straight or curved, towards, away from or across the sensor view), turns on the
spot, standing idle, and the exercises of data/motions.py, each with random parameters. Every
segment starts where the previous one ended (position, heading and the neutral standing pose), so
there are no jumps, and the pelvis stays inside ``area``: walks head for a random place inside it
(away from its edges), and any segment that would leave it is drawn again.

``make_program(name, ...)`` renders a named program; ``PROGRAMS`` lists them:
- ``mars_rehab``: the ten rehabilitation movements of the MARS dataset (An & Ogras, 2021) performed
  standing, facing the radar 2 m away: left, right and both upper-limb extensions (arms raised
  sideways above the shoulder), left and right front lunges, squats, left and right side lunges,
  left and right lower-limb extensions (leg raised sideways), with a pause between movements.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ros2_radar_pose.body.models import BodyModel
from ros2_radar_pose.data.motions import (
    MAX_TURN_RATE,
    Motion,
    Placement,
    Segment,
    arm_raise,
    front_lunge,
    idle,
    leg_extension,
    max_walking_speed,
    render,
    side_lunge,
    sit,
    squat,
    turn,
    walk,
    wave,
)
from ros2_radar_pose.data.subjects import Subject, random_subject

AREA = ((1.2, 4.0), (-1.2, 1.2))     # (x range, y range) m in the world: in front of the radar
EDGE_MARGIN = 0.5                     # m: walks end this far inside the area; exercises move the pelvis less
CHECK_RATE = 4.0                      # Hz at which a drawn segment's path is checked against the area
# Relative frequency of each kind of segment in a random program.
WEIGHTS = {"walk": 0.28, "turn": 0.06, "idle": 0.12, "arm_raise": 0.1, "leg_extension": 0.07, "front_lunge": 0.07,
           "side_lunge": 0.06, "squat": 0.08, "wave": 0.08, "sit": 0.08}


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class _Chain:
    """Segments in order, each starting where the last ended."""

    def __init__(self, subject: Subject, start: Placement):
        self.subject, self.segments, self.place = subject, [], start
        self.duration = 0.0

    def add(self, segment: Segment) -> None:
        self.segments.append(segment)
        self.place, self.duration = segment.end, self.duration + segment.duration

    def turn_towards(self, heading: float, rng: np.random.Generator, tolerance: float = 0.3) -> None:
        """Turn on the spot to face ``heading`` (the shorter way) unless within ``tolerance`` rad."""
        angle = _wrap(heading - self.place.heading)
        if abs(angle) > tolerance:
            self.add(turn(self.subject, self.place, rng, angle=angle, rate=rng.uniform(0.8, 1.6)))


def _inside(segment: Segment, area, margin: float = 0.0) -> bool:
    t = np.linspace(0.0, segment.duration, max(2, int(segment.duration * CHECK_RATE) + 1))
    xy = segment.sample(t).pelvis_xy
    (x0, x1), (y0, y1) = area
    return bool(np.all((xy[:, 0] >= x0 + margin) & (xy[:, 0] <= x1 - margin)
                       & (xy[:, 1] >= y0 + margin) & (xy[:, 1] <= y1 - margin)))


def _walk_somewhere(chain: _Chain, rng: np.random.Generator, area) -> bool:
    """Turn and walk to a random place inside the area, towards its middle when near an edge;
    often straight towards or away from the radar, sometimes along a curve."""
    (x0, x1), (y0, y1) = area
    inner = ((x0 + EDGE_MARGIN, x1 - EDGE_MARGIN), (y0 + EDGE_MARGIN, y1 - EDGE_MARGIN))
    here = chain.place.xy
    middle = np.array([np.mean(inner[0]), np.mean(inner[1])])
    for _ in range(30):
        if rng.random() < 0.3:                      # along the line of sight: towards or away from the radar
            rho = rng.uniform(*inner[0]) / max(abs(math.cos(math.atan2(here[1], here[0]))), 1e-3)
            target = rho * here / np.linalg.norm(here)
        else:
            target = np.array([rng.uniform(*inner[0]), rng.uniform(*inner[1])])
        edge_distance = min(here[0] - inner[0][0], inner[0][1] - here[0], here[1] - inner[1][0], inner[1][1] - here[1])
        near_edge = edge_distance < 0.3
        if near_edge and np.dot(target - here, middle - here) <= 0:
            continue
        if not (inner[0][0] <= target[0] <= inner[0][1] and inner[1][0] <= target[1] <= inner[1][1]):
            continue
        chord = float(np.linalg.norm(target - here))
        if chord < 0.8:
            continue
        speed = rng.uniform(0.5, min(1.4, max_walking_speed(chain.subject)))
        bend = 0.0
        if rng.random() < 0.4:                      # a curve: set off to one side of the target, arrive on it
            sharpest = chord * MAX_TURN_RATE / (1.875 * speed)
            bend = float(np.clip(rng.uniform(0.3, 1.2), 0.0, sharpest) * rng.choice([-1, 1]))
        length = chord * (bend / 2) / math.sin(bend / 2) if abs(bend) > 1e-3 else chord
        heading = math.atan2(target[1] - here[1], target[0] - here[0]) - bend / 2
        trial = _Chain(chain.subject, chain.place)
        trial.turn_towards(heading, rng, tolerance=0.15)
        try:
            trial.add(walk(chain.subject, trial.place, rng, speed=speed, distance=length, turn=bend))
        except ValueError:
            continue
        if all(_inside(s, area) for s in trial.segments):
            for segment in trial.segments:
                chain.add(segment)
            return True
    return False


def _exercise(kind: str, chain: _Chain, rng: np.random.Generator) -> Segment:
    """One exercise of ``kind`` with random parameters, where the chain stands."""
    subject, place = chain.subject, chain.place
    leg, side = subject.hip_height, str(rng.choice(["left", "right"]))
    u = rng.uniform
    if kind == "idle":
        return idle(subject, place, rng, duration=u(2.0, 6.0), sway=u(0.5, 1.5), look_around=u(0.0, 1.5))
    if kind == "arm_raise":
        plane = str(rng.choice(["front", "side"]))
        return arm_raise(subject, place, rng, side=str(rng.choice(["left", "right", "both"])), plane=plane,
                         angle=u(0.8, 2.6 if plane == "front" else 2.9), repetitions=int(rng.integers(1, 4)),
                         hold=u(0.2, 1.5), raise_time=u(0.8, 1.6))
    if kind == "leg_extension":
        direction = str(rng.choice(["front", "side", "back"]))
        top = {"front": 0.9, "side": 0.55, "back": 0.35}[direction]
        return leg_extension(subject, place, rng, side=side, direction=direction, angle=u(0.2, top),
                             repetitions=int(rng.integers(1, 3)), hold=u(0.2, 1.2))
    if kind == "front_lunge":
        length = u(0.5, 0.95) * leg
        return front_lunge(subject, place, rng, side=side, length=length,
                           depth=u(0.1, 0.38) * leg * min(1.0, length / (0.85 * leg)),
                           repetitions=int(rng.integers(1, 3)), hold=u(0.2, 1.0))
    if kind == "side_lunge":
        length = u(0.3, 0.58) * leg
        return side_lunge(subject, place, rng, side=side, length=length,
                          depth=u(0.08, 0.28) * leg * min(1.0, length / (0.5 * leg)),
                          repetitions=int(rng.integers(1, 3)), hold=u(0.2, 1.0))
    if kind == "squat":
        return squat(subject, place, rng, depth=u(0.1, 0.44) * leg, repetitions=int(rng.integers(1, 4)),
                     hold=u(0.2, 1.0), arms=str(rng.choice(["forward", "down"])))
    if kind == "wave":
        return wave(subject, place, rng, side=str(rng.choice(["left", "right", "both"], p=[0.4, 0.5, 0.1])),
                    waving_time=u(1.0, 4.0), frequency=u(1.2, 3.0), amplitude=u(0.2, 0.5))
    if kind == "sit":
        low, high = 0.85 * subject.shank + 0.03, min(subject.hip_height - 0.13, 0.33 * subject.height)
        return sit(subject, place, rng, chair_height=u(low, high), seated_time=u(1.0, 5.0))
    raise ValueError(f"unknown exercise {kind!r}")


def random_program(duration_s: float, fps: float, seed, body: BodyModel, betas: np.ndarray | None = None,
                   area: tuple[tuple[float, float], tuple[float, float]] = AREA) -> Motion:
    """``duration_s`` seconds at ``fps`` of random, randomly parameterised motions chained without
    jumps, the pelvis inside ``area`` ((x0, x1), (y0, y1)) m. ``betas`` (K,): the subject's shape,
    drawn by ``random_subject`` when None. The same seed gives the same program."""
    (x0, x1), (y0, y1) = area
    if not (x1 - x0 >= 2 * EDGE_MARGIN + 0.5 and y1 - y0 >= 2 * EDGE_MARGIN + 0.5):
        raise ValueError(f"area {area} is too small to walk in: each side must be at least "
                         f"{2 * EDGE_MARGIN + 0.5:.1f} m")
    if not (math.isfinite(duration_s) and 0 < duration_s <= 24 * 3600):
        raise ValueError(f"duration_s must be a positive number of seconds up to a day, got {duration_s!r}")
    rng = np.random.default_rng(seed)
    betas = random_subject(rng, body) if betas is None else betas
    subject = Subject.of(body, betas)
    x = rng.uniform(x0 + EDGE_MARGIN, x1 - EDGE_MARGIN)
    y = rng.uniform(y0 + EDGE_MARGIN, y1 - EDGE_MARGIN)
    facing = Placement.facing_sensor(x, y)
    chain = _Chain(subject, Placement(x, y, facing.heading + rng.uniform(-0.5, 0.5)))
    kinds, weights = list(WEIGHTS), np.array(list(WEIGHTS.values()))
    while chain.duration < duration_s:
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        if kind == "walk":
            if not _walk_somewhere(chain, rng, area):
                chain.add(idle(subject, chain.place, rng, duration=2.0))
            continue
        if kind == "turn":
            toward_sensor = rng.random() < 0.5
            heading = (Placement.facing_sensor(chain.place.x, chain.place.y).heading if toward_sensor
                       else chain.place.heading + rng.uniform(0.5, math.pi) * rng.choice([-1, 1]))
            chain.turn_towards(heading, rng)
            continue
        trial = _Chain(subject, chain.place)
        if kind not in ("idle", "wave") and rng.random() < 0.6:         # face the radar to exercise
            trial.turn_towards(Placement.facing_sensor(chain.place.x, chain.place.y).heading, rng)
        trial.add(_exercise(kind, trial, rng))
        if all(_inside(s, area) for s in trial.segments):
            for segment in trial.segments:
                chain.add(segment)
    return render(chain.segments, fps, name="random_program", duration=duration_s)


def mars_rehab(subject: Subject, start: Placement | None = None, seed=None, *, repetitions: int = 3,
               pause: float = 1.5) -> list[Segment]:
    """The MARS rehabilitation movements (see module), each ``repetitions`` times, ``pause`` s of
    standing between them; starting (by default) 2 m in front of the radar, facing it."""
    rng = np.random.default_rng(seed)
    start = start or Placement.facing_sensor(2.0, 0.0)
    chain = _Chain(subject, start)
    movements: list[Callable[[Placement], Segment]] = [
        lambda p: arm_raise(subject, p, rng, side="left", plane="side", angle=2.6, repetitions=repetitions),
        lambda p: arm_raise(subject, p, rng, side="right", plane="side", angle=2.6, repetitions=repetitions),
        lambda p: arm_raise(subject, p, rng, side="both", plane="side", angle=2.6, repetitions=repetitions),
        lambda p: front_lunge(subject, p, rng, side="left", repetitions=repetitions),
        lambda p: front_lunge(subject, p, rng, side="right", repetitions=repetitions),
        lambda p: squat(subject, p, rng, repetitions=repetitions),
        lambda p: side_lunge(subject, p, rng, side="left", repetitions=repetitions),
        lambda p: side_lunge(subject, p, rng, side="right", repetitions=repetitions),
        lambda p: leg_extension(subject, p, rng, side="left", direction="side", repetitions=repetitions),
        lambda p: leg_extension(subject, p, rng, side="right", direction="side", repetitions=repetitions),
    ]
    chain.add(idle(subject, chain.place, rng, duration=pause))
    for movement in movements:
        chain.add(movement(chain.place))
        chain.add(idle(subject, chain.place, rng, duration=pause, look_around=0.3))
    return chain.segments


PROGRAMS: dict[str, Callable[..., list[Segment]]] = {"mars_rehab": mars_rehab}


def make_program(name: str, body: BodyModel, betas: np.ndarray | None = None, *, fps: float = 20.0, seed=None,
                 start: Placement | None = None, **params) -> Motion:
    """A program of ``PROGRAMS`` by name, rendered for ``body`` with shape ``betas`` at ``fps``."""
    if name not in PROGRAMS:
        raise ValueError(f"unknown program {name!r}; known: {', '.join(PROGRAMS)}")
    try:
        segments = PROGRAMS[name](Subject.of(body, betas), start, seed, **params)
    except TypeError as error:
        raise ValueError(f"{name}: {error}") from None
    return render(segments, fps, name=name)
