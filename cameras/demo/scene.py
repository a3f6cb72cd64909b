"""The demo scene's layout and the walk of its one shopper, in fractions of the picture.

Standard library only: bin/demo-camera imports this under Debian's /usr/bin/python3, where
neither the virtualenv nor Django is available. tests/support/video.py and seed_demo import it too,
so the stream, the test video and the demo zones agree on where everything is.

Once a cycle (30 s by default) the shopper walks in from the left edge to the shelf, stands there,
walks to the exit along the back of the floor (the checkout counter is in the foreground, off the
path), stands in the exit zone and leaves the picture on the right.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
STORE_JPG = HERE / "store.jpg"  # the still background, drawn by cameras/demo/draw.py
PERSON_JPG = HERE / "person.jpg"  # a photograph of a person; see README.md for its provenance

WIDTH, HEIGHT, FPS = 1280, 720, 25
CYCLE = 30.0  # seconds between visits

# The person photo (350x512) is shown 260x380 px in the 1280x720 picture: 53% of its height.
PERSON_W, PERSON_H = 260 / WIDTH, 380 / HEIGHT
FOOT_Y = 0.72  # where the shopper's feet (the bottom of the box) are, all along the walk

SHELF_X, EXIT_X = 0.24, 0.89  # feet positions at the shelf and at the exit door
# (seconds into a 30 s cycle, feet x); linear in between, off-screen after the last one.
WAYPOINTS: tuple[tuple[float, float], ...] = (
    (0.0, -PERSON_W / 2),  # just outside the left edge
    (5.0, SHELF_X),  # walked to the shelf
    (11.0, SHELF_X),  # stood at the shelf for 6 s
    (16.0, EXIT_X),  # walked to the exit
    (18.0, EXIT_X),  # stood at the exit for 2 s
    (20.0, 1.0 + PERSON_W / 2),  # left the picture on the right
)
# The phases of a 30 s cycle, (start, end) seconds; see phases() for other cycle lengths.
PHASES: dict[str, tuple[float, float]] = {
    "enter": (0.0, 5.0),
    "shelf": (5.0, 11.0),
    "to_exit": (11.0, 16.0),
    "exit": (16.0, 18.0),
    "leave": (18.0, 20.0),
    "away": (20.0, CYCLE),
}

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 as fractions of width and height
Polygon = list[list[float]]

# What is drawn where (rectangles x1, y1, x2, y2; the clock is centre x, centre y, radius in height).
WALL_BOTTOM = 0.50
SHELF_UNIT: Box = (0.07, 0.10, 0.40, 0.55)
STAFF_DOOR: Box = (0.47, 0.17, 0.57, 0.50)
CLOCK = (0.665, 0.10, 0.065)
EXIT_DOOR: Box = (0.81, 0.16, 0.97, 0.50)
EXIT_SIGN: Box = (0.835, 0.05, 0.945, 0.13)
COUNTER: Box = (0.44, 0.83, 0.74, 1.0)

# The demo camera's zones (name, kind, polygon), matching the drawing. The shopper's feet go through
# the shelf and exit zones and stay out of the checkout and staff-door zones; the clock (whose hands
# would move on a real wall) is masked, above the shopper's head.
ZONES: tuple[tuple[str, str, Polygon], ...] = (
    ("Shelf", "shelf", [[0.05, 0.08], [0.42, 0.08], [0.42, 0.82], [0.05, 0.82]]),
    ("Checkout", "checkout", [[0.40, 0.80], [0.78, 0.80], [0.78, 1.0], [0.40, 1.0]]),
    ("Exit", "exit", [[0.78, 0.50], [1.0, 0.50], [1.0, 0.80], [0.78, 0.80]]),
    ("Staff door", "restricted", [[0.45, 0.50], [0.59, 0.50], [0.59, 0.64], [0.45, 0.64]]),
    ("Clock", "ignore", [[0.62, 0.02], [0.71, 0.02], [0.71, 0.18], [0.62, 0.18]]),
)


def _scale(cycle: float) -> float:
    """A cycle shorter than 30 s plays the whole visit faster; a longer one only waits longer."""
    if cycle <= 0:
        raise ValueError(f"the demo cycle must be positive, not {cycle} s")
    return min(1.0, cycle / CYCLE)


def phases(cycle: float = CYCLE) -> dict[str, tuple[float, float]]:
    """PHASES for a cycle of this length, in seconds from the start of the cycle."""
    scale = _scale(cycle)
    timed = {name: (start * scale, end * scale) for name, (start, end) in PHASES.items()}
    timed["away"] = (timed["away"][0], cycle)
    return timed


def feet_x(t: float, cycle: float = CYCLE) -> float | None:
    """The shopper's feet x at t seconds (any t: the walk repeats every cycle); None when away."""
    scale = _scale(cycle)
    phase = (t % cycle) / scale
    for (t1, x1), (t2, x2) in zip(WAYPOINTS, WAYPOINTS[1:]):
        if t1 <= phase < t2:
            return x1 + (x2 - x1) * (phase - t1) / (t2 - t1)
    return None


def person_box(t: float, cycle: float = CYCLE) -> Box | None:
    """The shopper's box at t seconds, as fractions of the picture (it may reach past an edge while
    the shopper walks in or out); None while they are away."""
    x = feet_x(t, cycle)
    if x is None:
        return None
    return (x - PERSON_W / 2, FOOT_Y - PERSON_H, x + PERSON_W / 2, FOOT_Y)


def person_xy(t: float, width: int, height: int, cycle: float = CYCLE) -> tuple[int, int] | None:
    """The top-left pixel of the person photo in a width x height picture; None while away."""
    box = person_box(t, cycle)
    if box is None:
        return None
    return round(box[0] * width), round(box[1] * height)
