"""Draws the demo scene's still background, a small shop seen by a wall-mounted camera, into store.jpg.

    .venv/bin/python -m cameras.demo.draw

The layout comes from cameras/demo/scene.py, so the drawing, the demo zones and the shopper's walk
agree. Run it again after changing the layout, and commit the new store.jpg.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from cameras.demo import scene

FONT = cv2.FONT_HERSHEY_DUPLEX
# A few product colours (BGR), repeated along the shelves.
PRODUCTS = ((40, 60, 200), (200, 120, 30), (40, 170, 60), (30, 190, 230), (150, 60, 150), (230, 230, 230),
            (20, 110, 240), (120, 80, 40))


def _px(box: scene.Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = size
    return round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)


def _label(image: np.ndarray, text: str, centre: tuple[int, int], scale: float, color: tuple[int, int, int],
           thickness: int = 2) -> None:
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, thickness)
    cv2.putText(image, text, (centre[0] - tw // 2, centre[1] + th // 2), FONT, scale, color, thickness, cv2.LINE_AA)


def _floor(image: np.ndarray, size: tuple[int, int]) -> None:
    w, h = size
    top = round(scene.WALL_BOTTOM * h)
    ramp = np.linspace(150, 185, h - top, dtype=np.float32)[:, None, None]
    image[top:] = (ramp * np.array([0.95, 0.97, 1.0], dtype=np.float32)).astype(np.uint8)
    # Tiles in perspective: lines converging on a point above the picture, rows closer together far away.
    vanish = (w / 2, -1.2 * h)
    for i in range(-12, 13):
        x_bottom = w / 2 + i * w / 9
        t = (top - vanish[1]) / (h - vanish[1])
        x_top = vanish[0] + (x_bottom - vanish[0]) * t
        cv2.line(image, (round(x_top), top), (round(x_bottom), h), (135, 138, 140), 1, cv2.LINE_AA)
    y = float(top)
    step = 18.0
    while y < h:
        cv2.line(image, (0, round(y)), (w, round(y)), (135, 138, 140), 1, cv2.LINE_AA)
        y += step
        step *= 1.25
    cv2.line(image, (0, top), (w, top), (90, 95, 100), 3)  # skirting board


def _shelf(image: np.ndarray, size: tuple[int, int]) -> None:
    x1, y1, x2, y2 = _px(scene.SHELF_UNIT, size)
    cv2.rectangle(image, (x1, y1), (x2, y2), (50, 75, 110), -1)  # wooden frame
    cv2.rectangle(image, (x1 + 8, y1 + 44), (x2 - 8, y2 - 8), (70, 100, 140), -1)
    cv2.rectangle(image, (x1, y1), (x2, y1 + 36), (40, 40, 160), -1)  # header board
    _label(image, "SHELF", ((x1 + x2) // 2, y1 + 18), 0.9, (255, 255, 255))
    rows = 4
    row_h = (y2 - 8 - (y1 + 44)) / rows
    for r in range(rows):
        base = round(y1 + 44 + (r + 1) * row_h)
        cv2.rectangle(image, (x1 + 8, base - 6), (x2 - 8, base), (35, 55, 85), -1)  # the shelf board
        x = x1 + 14
        i = r * 3
        while x < x2 - 30:
            pw = 18 + (i * 7) % 16
            ph = round(row_h * (0.45 + 0.1 * ((i * 5) % 4)))
            color = PRODUCTS[i % len(PRODUCTS)]
            cv2.rectangle(image, (x, base - 6 - ph), (x + pw, base - 7), color, -1)
            cv2.rectangle(image, (x, base - 6 - ph), (x + pw, base - 7), (30, 30, 30), 1)
            cv2.rectangle(image, (x + 3, base - 6 - ph // 2 - 4), (x + pw - 3, base - 6 - ph // 2 + 4),
                          (245, 245, 245), -1)  # a label on the product
            x += pw + 5
            i += 1


def _staff_door(image: np.ndarray, size: tuple[int, int]) -> None:
    x1, y1, x2, y2 = _px(scene.STAFF_DOOR, size)
    cv2.rectangle(image, (x1 - 6, y1 - 6), (x2 + 6, y2), (90, 90, 90), -1)
    cv2.rectangle(image, (x1, y1), (x2, y2), (120, 130, 140), -1)
    cv2.circle(image, (x2 - 16, (y1 + y2) // 2), 6, (40, 40, 40), -1)
    cv2.rectangle(image, (x1 + 10, y1 + 20), (x2 - 10, y1 + 60), (255, 255, 255), -1)
    _label(image, "STAFF", ((x1 + x2) // 2, y1 + 31), 0.5, (0, 0, 180), 1)
    _label(image, "ONLY", ((x1 + x2) // 2, y1 + 50), 0.5, (0, 0, 180), 1)


def _clock(image: np.ndarray, size: tuple[int, int]) -> None:
    w, h = size
    cx, cy, r = round(scene.CLOCK[0] * w), round(scene.CLOCK[1] * h), round(scene.CLOCK[2] * h)
    cv2.circle(image, (cx, cy), r, (40, 40, 40), -1, cv2.LINE_AA)
    cv2.circle(image, (cx, cy), r - 5, (245, 245, 245), -1, cv2.LINE_AA)
    for k in range(12):
        a = k * math.pi / 6
        cv2.line(image, (round(cx + (r - 9) * math.sin(a)), round(cy - (r - 9) * math.cos(a))),
                 (round(cx + (r - 14) * math.sin(a)), round(cy - (r - 14) * math.cos(a))), (40, 40, 40), 2)
    cv2.line(image, (cx, cy), (cx + round(0.5 * r), cy - round(0.2 * r)), (20, 20, 20), 4, cv2.LINE_AA)
    cv2.line(image, (cx, cy), (cx - round(0.15 * r), cy - round(0.75 * r)), (20, 20, 20), 2, cv2.LINE_AA)


def _exit(image: np.ndarray, size: tuple[int, int]) -> None:
    x1, y1, x2, y2 = _px(scene.EXIT_DOOR, size)
    cv2.rectangle(image, (x1 - 8, y1 - 8), (x2 + 8, y2), (70, 70, 70), -1)
    mid = (x1 + x2) // 2
    for a, b in ((x1, mid - 2), (mid + 2, x2)):  # two glass panes with a view of the street
        cv2.rectangle(image, (a, y1), (b, y2), (200, 185, 160), -1)
        cv2.rectangle(image, (a, y1), (b, y2), (110, 110, 110), 3)
        cv2.line(image, (a + 10, y1 + 30), (a + 40, y1 + 5), (235, 230, 220), 3, cv2.LINE_AA)
    sx1, sy1, sx2, sy2 = _px(scene.EXIT_SIGN, size)
    cv2.rectangle(image, (sx1, sy1), (sx2, sy2), (40, 150, 30), -1)
    cv2.rectangle(image, (sx1, sy1), (sx2, sy2), (20, 80, 10), 2)
    _label(image, "EXIT", ((sx1 + sx2) // 2, (sy1 + sy2) // 2), 1.1, (255, 255, 255))


def _counter(image: np.ndarray, size: tuple[int, int]) -> None:
    x1, y1, x2, y2 = _px(scene.COUNTER, size)
    cv2.rectangle(image, (x1, y1), (x2, y2), (60, 60, 65), -1)
    cv2.rectangle(image, (x1 - 6, y1 - 12), (x2 + 6, y1 + 4), (200, 200, 205), -1)  # the counter top
    _label(image, "CHECKOUT", ((x1 + x2) // 2, (y1 + y2) // 2 + 8), 1.0, (255, 255, 255))
    rx = x2 - 110  # a till on the counter
    cv2.rectangle(image, (rx, y1 - 60), (rx + 80, y1 - 12), (30, 30, 30), -1)
    cv2.rectangle(image, (rx + 8, y1 - 54), (rx + 72, y1 - 30), (180, 140, 60), -1)
    cv2.rectangle(image, (x1 + 30, y1 - 22), (x1 + 130, y1 - 12), (20, 20, 20), -1)  # the conveyor belt


def draw_store(size: tuple[int, int] = (scene.WIDTH, scene.HEIGHT)) -> np.ndarray:
    """The background as a BGR image."""
    w, h = size
    image = np.empty((h, w, 3), dtype=np.uint8)
    wall = round(scene.WALL_BOTTOM * h)
    ramp = np.linspace(215, 195, wall, dtype=np.float32)[:, None, None]
    image[:wall] = (ramp * np.array([0.80, 0.90, 1.0], dtype=np.float32)).astype(np.uint8)  # a cream wall
    _floor(image, size)
    _shelf(image, size)
    _staff_door(image, size)
    _clock(image, size)
    _exit(image, size)
    _counter(image, size)
    return image


def main() -> None:
    path = Path(scene.STORE_JPG)
    cv2.imwrite(str(path), draw_store(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
