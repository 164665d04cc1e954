"""A small built-in radar scene as a TI UART byte stream, for the demo and the tests.

One person walks an ellipse in front of the radar among static wall returns and random ghost
points; a few packets are damaged on purpose (garbage between packets, a packet cut short, a
packet whose length field lies), as a real serial line sometimes does. The person's points lie on
a body-sized column with Doppler from the walking motion plus limb swing, quantised like a TI
radar's velocity bins. This is a stand-in until the radar simulator exists, not a radar model.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ros2_radar_pose.radar.ti_uart import encode_frame

DOPPLER_STEP = 0.13  # m/s, a typical out-of-box demo velocity resolution


@dataclass
class DemoStream:
    """The stream and what a correct reader should get out of it."""

    data: bytes
    rate: float                 # frames per second
    truth: np.ndarray           # (F, 2) person centre (x, y) in ROS axes, per intact packet
    n_packets: int              # packets in the stream, damaged ones included
    damaged: dict[int, str]     # packet index -> what was done to it (lost packets only)
    garbage_bytes: int          # bytes inserted between packets


def make_demo_stream(seconds: float = 10.0, rate: float = 20.0, seed: int = 0) -> DemoStream:
    """Build the scene's byte stream: ``seconds`` of packets at ``rate`` Hz (xWR18xx layout)."""
    rng = np.random.default_rng(seed)
    n_packets = int(round(seconds * rate))
    wall_spots = np.c_[np.full(10, 4.55), np.linspace(-1.9, 1.9, 10), rng.uniform(-0.5, 1.0, 10)]
    chunks, truth, damaged, garbage = [], [], {}, 0
    for index in range(n_packets):
        t = index / rate
        centre, velocity = _walk(t)
        n_body = int(rng.poisson(24))
        angle = rng.uniform(0, 2 * np.pi, n_body)
        body = np.c_[centre[0] + 0.18 * np.cos(angle), centre[1] + 0.18 * np.sin(angle),
                     rng.uniform(-1.0, 0.75, n_body)]          # radar 1 m above the floor
        line_of_sight = body / np.linalg.norm(body, axis=1, keepdims=True)
        radial = line_of_sight[:, :2] @ velocity + rng.normal(0, 0.25, n_body)
        seen = rng.random(len(wall_spots)) < 0.6
        walls = wall_spots[seen] + rng.normal(0, 0.02, (int(seen.sum()), 3))
        ghosts = rng.uniform([0.5, -3, -1], [6, 3, 1.5], (int(rng.random() < 0.3), 3))
        xyz = np.concatenate([body, walls, ghosts])
        doppler = np.concatenate([radial, np.zeros(len(walls)), rng.normal(0, 1, len(ghosts))])
        doppler = np.round(doppler / DOPPLER_STEP) * DOPPLER_STEP
        snr = np.concatenate([rng.uniform(8, 25, n_body), rng.uniform(15, 30, len(walls)),
                              rng.uniform(5, 10, len(ghosts))])
        # ROS axes (x forward, y left) to TI axes (x right, y forward).
        ti = np.c_[-xyz[:, 1], xyz[:, 0], xyz[:, 2], doppler].astype(np.float32)
        packet = encode_frame(ti, index, snr_db=snr, noise_db=np.full(len(snr), 3.0),
                              time_cpu_cycles=index * 10_000_000)
        if index % 50 == 17:                          # garbage on the line before the packet
            noise = bytes(rng.integers(0, 256, 57, dtype=np.uint8))
            chunks.append(noise)
            garbage += len(noise)
        if index % 50 == 33:                          # bytes lost: the packet is cut short
            packet = packet[: len(packet) * 3 // 5]
            damaged[index] = "truncated"
        elif index % 50 == 45:                        # the length field claims 4 KiB more
            packet = packet[:12] + struct.pack("<I", len(packet) + 4096) + packet[16:]
            damaged[index] = "lying length"
        else:
            truth.append(centre)
        chunks.append(packet)
    return DemoStream(b"".join(chunks), rate, np.array(truth).reshape(-1, 2), n_packets, damaged, garbage)


def _walk(t: float) -> tuple[np.ndarray, np.ndarray]:
    """Position and velocity (x, y) of the person at time t: an ellipse at about 0.6 m/s."""
    omega = 0.4
    centre = np.array([2.6 + 0.9 * np.sin(omega * t), 1.3 * np.sin(2 * omega * t) / 2])
    velocity = np.array([0.9 * omega * np.cos(omega * t), 1.3 * omega * np.cos(2 * omega * t)])
    return centre, velocity
