"""Synthetic street scenes with exact Cityscapes labels, for tests, CI, bags and the demo.

A scene is a small 3-D world (flat ground, a straight road, buildings, trees, street furniture,
vehicles, people) seen by a pinhole camera at driver height. Every shape is drawn into the RGB
image and into the train-id map with the *same* polygon, so the label matches the image exactly;
texture, shadows and lighting only touch the image. Distant poles end up one or two pixels
wide and distant signs and lights a few pixels, which is the small-object regime the network is
built for.

Everything is a pure function of the seed: the world layout comes from one random stream and
each frame's noise from another, derived with ``numpy.random.SeedSequence``, so the same seed
gives byte-identical images and labels.

CLI::

    python -m bisestdc_core.data.synthetic --out DIR --frames 100 --split train \\
        --height 512 --width 1024 --seed 0 [--sequence]
"""

from __future__ import annotations

import argparse
import functools
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bisestdc_core.classes import CITYSCAPES, IGNORE_INDEX
from bisestdc_core.data.cityscapes_labels import train_ids_to_label_ids

logger = logging.getLogger(__name__)

_ID = {name: i for i, name in enumerate(CITYSCAPES.names)}
ROAD, SIDEWALK, BUILDING, WALL, FENCE = (_ID[n] for n in ("road", "sidewalk", "building", "wall",
                                                          "fence"))
POLE, LIGHT, SIGN = _ID["pole"], _ID["traffic light"], _ID["traffic sign"]
VEGETATION, TERRAIN, SKY = _ID["vegetation"], _ID["terrain"], _ID["sky"]
PERSON, RIDER, CAR, TRUCK, BUS, BICYCLE = (_ID[n] for n in ("person", "rider", "car", "truck",
                                                            "bus", "bicycle"))

DRAWN_CLASSES = (ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN,
                 SKY, PERSON, RIDER, CAR, TRUCK, BUS, BICYCLE)
"""Train ids the generator can draw (motorcycle and train never appear)."""

CITY = "synthtown"
NEAR_Z = 1.5  # metres; nearer objects are culled (their projection would explode)
FAR_Z = 180.0  # metres; objects beyond are sub-pixel
SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate polygons
_ONE = 1 << SHIFT

# Texture strength per train id (std of the added grey noise, in grey levels).
_TEXTURE = np.full(256, 4.0, np.float32)
for _tid, _s in ((ROAD, 9), (SIDEWALK, 8), (BUILDING, 7), (WALL, 8), (FENCE, 6), (VEGETATION, 22),
                 (TERRAIN, 16), (SKY, 2), (CAR, 3), (TRUCK, 4), (BUS, 3)):
    _TEXTURE[_tid] = _s


# --------------------------------------------------------------------------------------------
# Camera and drawing
# --------------------------------------------------------------------------------------------


class _Canvas:
    """Image + train-id map with a pinhole camera; draws every shape into both."""

    def __init__(self, height: int, width: int, focal: float, cx: float, cy: float,
                 cam_h: float) -> None:
        self.h, self.w = height, width
        self.f, self.cx, self.cy, self.cam_h = focal, cx, cy, cam_h
        self.img = np.zeros((height, width, 3), np.uint8)
        self.lab = np.full((height, width), IGNORE_INDEX, np.uint8)
        # Ground shading (shadows, sun side), applied to the ground layer only.
        self.shade = np.ones((height, width), np.float32)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) world points (X right, Y up, Z forward, metres) -> (..., 2) fixed-point px."""
        pts = np.asarray(pts, np.float64)
        z = np.maximum(pts[..., 2], 1e-3)
        u = self.cx + self.f * pts[..., 0] / z
        v = self.cy + self.f * (self.cam_h - pts[..., 1]) / z
        uv = np.stack([u, v], -1) * _ONE
        return np.clip(np.round(uv), -(2**26), 2**26).astype(np.int32)

    def scale(self, z: float) -> float:
        """Pixels per metre for a frontal plane at depth z."""
        return self.f / z

    def fill(self, polys: np.ndarray | list[np.ndarray], color, tid: int | None) -> None:
        """Fill world polygons ((k, n, 3) or list of (n, 3)) in the image and, unless tid is
        None (image-only detail inside an already labelled shape), in the label map."""
        if isinstance(polys, np.ndarray):
            if polys.ndim == 2:
                polys = polys[None]
            pix = list(self.project(polys))
        else:
            pix = [self.project(p) for p in polys]
        if not pix:
            return
        cv2.fillPoly(self.img, pix, _color(color), cv2.LINE_8, SHIFT)
        if tid is not None:
            cv2.fillPoly(self.lab, pix, int(tid), cv2.LINE_8, SHIFT)

    def disc(self, center: tuple[float, float, float], radius: float, color, tid: int | None,
             thickness_m: float = 0.0) -> None:
        """A circle in the frontal plane through ``center``; a ring if thickness_m > 0."""
        c = self.project(np.asarray(center))
        r = max(int(round(radius * self.scale(center[2]) * _ONE)), _ONE // 2)
        thick = -1 if thickness_m <= 0 else max(1, int(round(thickness_m * self.scale(center[2]))))
        cv2.circle(self.img, (int(c[0]), int(c[1])), r, _color(color), thick, cv2.LINE_8, SHIFT)
        if tid is not None:
            cv2.circle(self.lab, (int(c[0]), int(c[1])), r, int(tid), thick, cv2.LINE_8, SHIFT)

    def ellipse(self, center: tuple[float, float, float], axes: tuple[float, float], color,
                tid: int | None) -> None:
        """A filled ellipse in the frontal plane through ``center`` (axes in metres)."""
        c = self.project(np.asarray(center))
        s = self.scale(center[2]) * _ONE
        ax = (max(int(round(axes[0] * s)), _ONE // 2), max(int(round(axes[1] * s)), _ONE // 2))
        args = ((int(c[0]), int(c[1])), ax, 0.0, 0.0, 360.0)
        cv2.ellipse(self.img, *args, _color(color), -1, cv2.LINE_8, SHIFT)
        if tid is not None:
            cv2.ellipse(self.lab, *args, int(tid), -1, cv2.LINE_8, SHIFT)

    def segment(self, p0, p1, width_m: float, color, tid: int | None) -> None:
        """A line segment between two world points, at least one pixel thick."""
        a, b = self.project(np.asarray([p0, p1]))
        z = min(p0[2], p1[2])
        thick = max(1, int(round(width_m * self.scale(z))))
        cv2.line(self.img, tuple(map(int, a)), tuple(map(int, b)), _color(color), thick,
                 cv2.LINE_8, SHIFT)
        if tid is not None:
            cv2.line(self.lab, tuple(map(int, a)), tuple(map(int, b)), int(tid), thick,
                     cv2.LINE_8, SHIFT)

    def shadow(self, polys: np.ndarray, factor: float) -> None:
        """Darken the ground under world polygons (image only, applied with the ground)."""
        if polys.ndim == 2:
            polys = polys[None]
        cv2.fillPoly(self.shade, list(self.project(polys)), float(factor), cv2.LINE_8, SHIFT)


def _color(c) -> tuple[int, int, int]:
    # Plain Python: this runs thousands of times per frame; np.clip per scalar is slow.
    return tuple(min(255, max(0, int(v))) for v in c)


def _frontal_rect(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], np.float64)


def _ground_quad(x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
    return np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]], np.float64)


def _side_quad(x: float, z0: float, z1: float, y0: float, y1: float) -> np.ndarray:
    """A vertical quad in the plane X = x (facades, car sides)."""
    return np.array([[x, y0, z0], [x, y0, z1], [x, y1, z1], [x, y1, z0]], np.float64)


# --------------------------------------------------------------------------------------------
# World description
# --------------------------------------------------------------------------------------------


@dataclass
class _Object:
    """One movable/standing thing: kind names a draw function; z is the near face."""

    kind: str
    x: float
    z: float
    vx: float = 0.0  # metres per frame
    vz: float = 0.0
    p: dict = field(default_factory=dict)


@dataclass
class _Building:
    side: int  # -1 left, +1 right
    z0: float
    z1: float
    height: float
    depth: float
    color: tuple[int, int, int]
    window_color: tuple[int, int, int]
    floor_h: float
    win_pitch: float


@dataclass
class _World:
    cam_h: float
    focal_frac: float
    horizon_frac: float
    cx_frac: float
    road_half: float
    lane_w: float
    sidewalk_w: float
    setback: float
    paved_setback: bool
    sky_top: tuple
    sky_horizon: tuple
    road_color: tuple
    sidewalk_color: tuple
    terrain_color: tuple
    veg_colors: list
    brightness: float
    gains: tuple
    contrast: float
    noise: float
    sun_side: int
    shadow_len: float
    far_band: str
    far_tops: np.ndarray
    buildings: list
    edges: list  # (side, z0, z1, kind, height, color) fences / walls / hedges
    objects: list
    crosswalks: list


def _rand_color(rng: np.random.Generator, base, jitter: float) -> tuple[int, int, int]:
    return _color(np.asarray(base, float) + rng.uniform(-jitter, jitter, 3))


def _make_world(rng: np.random.Generator, length: float) -> _World:
    """Random street layout over Z in [0, length + FAR_Z]."""
    overcast = rng.random() < 0.35
    sky_top = (150, 160, 170) if overcast else (60, 120, 200)
    sky_hor = (200, 205, 210) if overcast else (170, 200, 230)
    n_lanes = int(rng.integers(2, 5))
    lane_w = rng.uniform(3.0, 3.6)
    road_half = n_lanes * lane_w / 2
    sidewalk_w = rng.uniform(2.0, 4.5)
    world = _World(
        cam_h=rng.uniform(1.25, 1.65), focal_frac=rng.uniform(0.75, 1.1),
        horizon_frac=rng.uniform(0.38, 0.48), cx_frac=rng.uniform(0.42, 0.58),
        road_half=road_half, lane_w=lane_w, sidewalk_w=sidewalk_w,
        setback=rng.uniform(0.5, 6.0), paved_setback=bool(rng.random() < 0.4),
        sky_top=_rand_color(rng, sky_top, 20), sky_horizon=_rand_color(rng, sky_hor, 15),
        road_color=_rand_color(rng, (rng.uniform(70, 120),) * 3, 6),
        sidewalk_color=_rand_color(rng, (rng.uniform(140, 190),) * 3 + np.array([10, -5, 5]), 12),
        terrain_color=_rand_color(rng, (120, 140, 70), 25),
        veg_colors=[_rand_color(rng, (60, 100, 35), 20) for _ in range(4)],
        brightness=rng.uniform(0.6, 1.3), gains=tuple(rng.uniform(0.88, 1.12, 3)),
        contrast=rng.uniform(0.8, 1.2), noise=rng.uniform(2.0, 7.0),
        sun_side=int(rng.choice([-1, 1])), shadow_len=0.0 if overcast else rng.uniform(0.3, 1.2),
        far_band=str(rng.choice(["vegetation", "building", "none"])),
        far_tops=np.repeat(8 + 30 * rng.random(20), 2),
        buildings=[], edges=[], objects=[], crosswalks=[],
    )
    z_end = length + FAR_Z
    _add_buildings(rng, world, z_end)
    _add_edges(rng, world, z_end)
    _add_street_furniture(rng, world, z_end)
    _add_traffic(rng, world, z_end)
    _add_people(rng, world, z_end)
    world.crosswalks = [float(z) for z in np.cumsum(rng.uniform(60, 160, 8))]
    return world


def _add_buildings(rng: np.random.Generator, world: _World, z_end: float) -> None:
    palette = [(150, 140, 130), (120, 110, 105), (170, 160, 140), (140, 90, 70), (110, 115, 125),
               (190, 185, 175)]
    for side in (-1, 1):
        z = rng.uniform(-10, 5)
        while z < z_end:
            length = rng.uniform(8, 40)
            if rng.random() < 0.8:  # else a gap (alley / open lot showing sky)
                base = palette[int(rng.integers(len(palette)))]
                world.buildings.append(_Building(
                    side=side, z0=z, z1=z + length, height=rng.uniform(6, 30),
                    depth=rng.uniform(8, 20), color=_rand_color(rng, base, 15),
                    window_color=_rand_color(rng, (50, 60, 75), 20),
                    floor_h=rng.uniform(2.8, 3.6), win_pitch=rng.uniform(2.5, 4.0)))
            z += length + (rng.uniform(0.0, 3.0) if rng.random() < 0.7 else rng.uniform(5, 15))


def _add_edges(rng: np.random.Generator, world: _World, z_end: float) -> None:
    for side in (-1, 1):
        z = rng.uniform(0, 20)
        while z < z_end:
            length = rng.uniform(5, 30)
            kind = str(rng.choice(["fence", "wall", "hedge"]))
            height = {"fence": rng.uniform(0.9, 1.6), "wall": rng.uniform(0.6, 1.5),
                      "hedge": rng.uniform(0.7, 1.4)}[kind]
            base = {"fence": (160, 150, 140), "wall": (150, 145, 155),
                    "hedge": world.veg_colors[0]}[kind]
            world.edges.append((side, z, z + length, kind, height, _rand_color(rng, base, 20)))
            z += length + rng.uniform(10, 60)


def _add_street_furniture(rng: np.random.Generator, world: _World, z_end: float) -> None:
    rh, sw = world.road_half, world.sidewalk_w
    for side in (-1, 1):
        # Street lamps at a regular pitch: long thin poles.
        pitch = rng.uniform(18, 35)
        for z in np.arange(rng.uniform(3, pitch), z_end, pitch):
            world.objects.append(_Object("lamp", side * (rh + 0.4), float(z), p={
                "height": rng.uniform(6, 9), "width": rng.uniform(0.12, 0.22), "side": side}))
        # Trees on the sidewalk.
        if rng.random() < 0.75:
            pitch = rng.uniform(8, 20)
            for z in np.arange(rng.uniform(0, pitch), z_end, pitch):
                if rng.random() < 0.8:
                    world.objects.append(_Object("tree", side * (rh + sw * rng.uniform(0.6, 0.9)),
                                                 float(z), p={
                        "trunk_h": rng.uniform(1.8, 3.0), "crown": rng.uniform(1.2, 3.0),
                        "color": world.veg_colors[int(rng.integers(len(world.veg_colors)))]}))
        # Signs, near and far, on their own posts.
        z = rng.uniform(4, 15)
        while z < z_end:
            world.objects.append(_Object("sign", side * (rh + rng.uniform(0.3, 0.8)), z, p={
                "shape": str(rng.choice(["circle", "triangle", "square", "rect"])),
                "size": rng.uniform(0.45, 0.8), "height": rng.uniform(2.0, 3.2),
                "style": int(rng.integers(3))}))
            z += rng.uniform(8, 30)
    # Traffic lights: side posts plus an overhead one at each junction.
    z = rng.uniform(10, 35)
    while z < z_end:
        for side in (-1, 1):
            world.objects.append(_Object("light", side * (rh + 0.5), z, p={
                "overhead": False, "state": int(rng.integers(3)), "height": rng.uniform(2.4, 3.2),
                "back": bool(rng.random() < 0.3)}))
        if rng.random() < 0.7:
            side = int(rng.choice([-1, 1]))
            world.objects.append(_Object("light", side * (rh + 0.5), z + 0.5, p={
                "overhead": True, "state": int(rng.integers(3)), "height": 5.5,
                "reach": rng.uniform(2.5, rh + 0.5), "side": side, "back": False}))
        z += rng.uniform(25, 70)


def _add_traffic(rng: np.random.Generator, world: _World, z_end: float) -> None:
    rh, lw = world.road_half, world.lane_w
    n_lanes = int(round(2 * rh / lw))
    for lane in range(n_lanes):
        x = -rh + lw * (lane + 0.5)
        z = rng.uniform(9, 30)
        while z < z_end:
            kind = str(rng.choice(["car", "car", "car", "car", "truck", "bus"], p=None))
            dims = {"car": (rng.uniform(1.65, 1.9), rng.uniform(1.35, 1.6), rng.uniform(3.9, 4.8)),
                    "truck": (2.4, rng.uniform(2.8, 3.6), rng.uniform(6, 9)),
                    "bus": (2.55, 3.1, 12.0)}[kind]
            world.objects.append(_Object(kind, x + rng.uniform(-0.3, 0.3), z,
                                         vz=rng.uniform(0.2, 1.0), p={
                "w": dims[0], "h": dims[1], "l": dims[2],
                "color": _rand_color(rng, [(200, 200, 200), (30, 30, 35), (150, 20, 20),
                                           (40, 60, 140), (120, 125, 130), (220, 210, 190)]
                                     [int(rng.integers(6))], 20)}))
            z += dims[2] + rng.uniform(6, 40)
    for side in (-1, 1):  # parked cars along the kerb
        z = rng.uniform(7, 20)
        while z < z_end:
            if rng.random() < 0.6:
                world.objects.append(_Object("car", side * (rh - 1.1), z, p={
                    "w": rng.uniform(1.65, 1.85), "h": rng.uniform(1.35, 1.55),
                    "l": rng.uniform(3.9, 4.6),
                    "color": _rand_color(rng, (rng.uniform(30, 220),) * 3, 40)}))
            z += rng.uniform(5.5, 14)


def _person_params(rng: np.random.Generator) -> dict:
    return {"height": rng.uniform(1.5, 1.9), "top": _rand_color(rng, (120, 100, 100), 90),
            "bottom": _rand_color(rng, (60, 60, 80), 50),
            "skin": _rand_color(rng, (180, 140, 110), 50), "stride": rng.uniform(0, 0.25)}


def _add_people(rng: np.random.Generator, world: _World, z_end: float) -> None:
    rh, sw = world.road_half, world.sidewalk_w
    for side in (-1, 1):
        z = rng.uniform(3, 12)
        while z < z_end:
            world.objects.append(_Object("person", side * (rh + rng.uniform(0.4, sw - 0.3)), z,
                                         vz=rng.uniform(-0.15, 0.15), p=_person_params(rng)))
            if rng.random() < 0.15:  # parked bicycle next to a pedestrian
                world.objects.append(_Object("bicycle", side * (rh + sw - 0.4), z + 1.0, p={
                    "color": _rand_color(rng, (100, 100, 100), 90), "view": "side"}))
            z += rng.uniform(3, 25)
    z = rng.uniform(8, 25)
    while z < z_end:  # cyclists: along the kerb (rear view) or crossing (side view)
        crossing = rng.random() < 0.5
        x = rng.uniform(-rh, rh) if crossing else rng.choice([-1, 1]) * (rh - 0.7)
        p = _person_params(rng)
        p.update(color=_rand_color(rng, (100, 100, 100), 90), view="side" if crossing else "rear")
        world.objects.append(_Object("cyclist", float(x), z, vx=rng.uniform(-0.4, 0.4) * crossing,
                                     vz=0.0 if crossing else rng.uniform(0.1, 0.4), p=p))
        z += rng.uniform(15, 45)
    for zc in np.cumsum(rng.uniform(30, 90, 6)):  # pedestrians on the road (crossing)
        world.objects.append(_Object("person", rng.uniform(-rh, rh), float(zc),
                                     vx=rng.uniform(-0.12, 0.12), p=_person_params(rng)))


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _draw_ground(cv: _Canvas, world: _World, cam_z: float) -> None:
    h = cv.h
    cy = int(np.clip(round(cv.cy), 1, h - 1))
    t = np.linspace(0.0, 1.0, cy, dtype=np.float32)[:, None, None]
    top, hor = np.asarray(world.sky_top, np.float32), np.asarray(world.sky_horizon, np.float32)
    cv.img[:cy] = (top * (1 - t) + hor * t).astype(np.uint8)
    cv.lab[:cy] = SKY
    cv.img[cy:] = world.terrain_color
    cv.lab[cy:] = TERRAIN
    rh, sw = world.road_half, world.sidewalk_w
    far = 2000.0
    side_color = world.sidewalk_color
    for side in (-1, 1):
        outer = rh + sw + (world.setback if world.paved_setback else 0.0)
        cv.fill(_ground_quad(side * rh, side * outer, NEAR_Z, far), side_color, SIDEWALK)
        kerb = _ground_quad(side * rh, side * (rh + 0.15), NEAR_Z, far)
        cv.fill(kerb, np.asarray(side_color) * 0.8, None)
    cv.fill(_ground_quad(-rh, rh, NEAR_Z, far), world.road_color, ROAD)
    # Lane marks are road in Cityscapes: image only. Dashes scroll with the camera.
    marks = []
    z_first = NEAR_Z - ((cam_z + NEAR_Z) % 9.0)
    dash_z = np.arange(z_first, 150.0, 9.0)
    n_lanes = int(round(2 * rh / world.lane_w))
    for i in range(1, n_lanes):
        x = -rh + world.lane_w * i
        for z in dash_z:
            z0, z1 = max(z, NEAR_Z), z + 3.0
            if z1 > z0:
                marks.append(_ground_quad(x - 0.07, x + 0.07, z0, z1))
    for side in (-1, 1):
        marks.append(_ground_quad(side * (rh - 0.35), side * (rh - 0.2), NEAR_Z, far))
    for zc in world.crosswalks:
        z0 = zc - cam_z
        if NEAR_Z < z0 < 120:
            for x in np.arange(-rh + 0.5, rh - 0.5, 1.0):
                marks.append(_ground_quad(x, x + 0.5, z0, z0 + 3.0))
    paint = _color(np.asarray(world.road_color) * 0.4 + 150)
    cv.fill(marks, paint, None)


def _draw_far_band(cv: _Canvas, world: _World) -> None:
    """Distant tree line or skyline at the horizon, behind every building."""
    if world.far_band == "none":
        return
    z = 600.0
    xs = np.linspace(-700, 700, len(world.far_tops))
    tops = world.far_tops
    if world.far_band == "vegetation":
        tid, color = VEGETATION, np.asarray(world.veg_colors[1]) * 0.8
    else:
        tid, color = BUILDING, (140, 140, 150)
    pts = [[xs[0], -50, z]] + [[x, t, z] for x, t in zip(xs, tops)] + [[xs[-1], -50, z]]
    cv.fill([np.asarray(pts)], color, tid)


def _draw_building(cv: _Canvas, world: _World, b: _Building, cam_z: float) -> None:
    z0, z1 = max(b.z0 - cam_z, NEAR_Z), b.z1 - cam_z
    if z1 <= NEAR_Z or z0 > FAR_Z * 1.5:
        return
    x = b.side * (world.road_half + world.sidewalk_w + world.setback)
    cv.fill(_side_quad(x, z0, z1, 0.0, b.height), b.color, BUILDING)
    if b.z0 - cam_z > NEAR_Z:  # near end face, seen through gaps
        end = np.array([[x, 0, z0], [x + b.side * b.depth, 0, z0],
                        [x + b.side * b.depth, b.height, z0], [x, b.height, z0]])
        cv.fill(end, np.asarray(b.color) * 0.75, BUILDING)
    # Windows: image-only quads inside the facade, one fillPoly call.
    if z0 < 90:
        zs = np.arange(b.z0 + 1.0, b.z1 - 1.5, b.win_pitch) - cam_z
        zs = zs[(zs > NEAR_Z) & (zs < 90)]
        ys = np.arange(1.2, b.height - 1.5, b.floor_h)
        if zs.size and ys.size:
            zz, yy = np.meshgrid(zs, ys)
            zz, yy = zz.ravel(), yy.ravel()
            wl, wh = b.win_pitch * 0.5, b.floor_h * 0.45
            quads = np.stack([np.stack([np.full_like(zz, x), yy, zz], -1),
                              np.stack([np.full_like(zz, x), yy, zz + wl], -1),
                              np.stack([np.full_like(zz, x), yy + wh, zz + wl], -1),
                              np.stack([np.full_like(zz, x), yy + wh, zz], -1)], 1)
            cv.fill(quads, b.window_color, None)


def _draw_edge(cv: _Canvas, world: _World, edge: tuple, cam_z: float) -> None:
    side, z0, z1, kind, height, color = edge
    z0, z1 = max(z0 - cam_z, NEAR_Z), z1 - cam_z
    if z1 <= NEAR_Z or z0 > FAR_Z:
        return
    x = side * (world.road_half + world.sidewalk_w)
    tid = {"fence": FENCE, "wall": WALL, "hedge": VEGETATION}[kind]
    cv.fill(_side_quad(x, z0, z1, 0.0, height), color, tid)
    if kind == "fence":  # rails: image-only stripes
        rails = [_side_quad(x, z0, z1, y, y + 0.06) for y in (0.2, height - 0.1)]
        cv.fill(rails, np.asarray(color) * 0.6, None)


def _draw_lamp(cv: _Canvas, o: _Object, x: float, z: float) -> None:
    p = o.p
    w = p["width"] / 2
    cv.fill(_frontal_rect(x - w, x + w, 0.0, p["height"], z), (95, 95, 100), POLE)
    arm = -p["side"] * 1.5
    cv.segment((x, p["height"] - 0.1, z), (x + arm, p["height"] + 0.1, z), 0.08, (95, 95, 100),
               POLE)
    cv.fill(_frontal_rect(x + arm - 0.3, x + arm + 0.3, p["height"] - 0.05, p["height"] + 0.15,
                          z), (70, 70, 70), POLE)


def _draw_sign(cv: _Canvas, o: _Object, x: float, z: float) -> None:
    p = o.p
    s, hgt = p["size"], p["height"]
    cv.fill(_frontal_rect(x - 0.035, x + 0.035, 0.0, hgt, z), (120, 120, 125), POLE)
    cy_ = hgt + s / 2
    outer, inner = [((200, 20, 30), (240, 240, 240)), ((20, 60, 170), (230, 230, 240)),
                    ((240, 200, 0), (30, 30, 30))][p["style"]]
    if p["shape"] == "circle":
        cv.disc((x, cy_, z), s / 2, outer, SIGN)
        cv.disc((x, cy_, z), s * 0.35, inner, None)
    elif p["shape"] == "triangle":
        tri = np.array([[x - s / 2, hgt, z], [x + s / 2, hgt, z], [x, hgt + s * 0.87, z]])
        cv.fill(tri, outer, SIGN)
        small = np.array([[x - s / 4, hgt + s * 0.15, z], [x + s / 4, hgt + s * 0.15, z],
                          [x, hgt + s * 0.58, z]])
        cv.fill(small, inner, None)
    else:
        wide = 1.6 if p["shape"] == "rect" else 1.0
        cv.fill(_frontal_rect(x - s * wide / 2, x + s * wide / 2, hgt, hgt + s, z), outer, SIGN)
        cv.fill(_frontal_rect(x - s * wide * 0.3, x + s * wide * 0.3, hgt + s * 0.2,
                              hgt + s * 0.8, z), inner, None)


def _draw_light(cv: _Canvas, o: _Object, x: float, z: float) -> None:
    p = o.p
    hgt = p["height"]
    cv.fill(_frontal_rect(x - 0.06, x + 0.06, 0.0, hgt + 0.2, z), (60, 60, 65), POLE)
    bx = x
    if p["overhead"]:
        bx = x - p["side"] * p["reach"]
        cv.fill(_frontal_rect(min(x, bx), max(x, bx), hgt + 0.9, hgt + 1.0, z), (60, 60, 65),
                POLE)
    box_w, box_h = 0.34, 0.95
    y0 = hgt if not p["overhead"] else hgt - 0.05
    cv.fill(_frontal_rect(bx - box_w / 2, bx + box_w / 2, y0, y0 + box_h, z), (25, 25, 25), LIGHT)
    if p["back"]:
        return
    lit = [(255, 40, 30), (255, 190, 0), (40, 255, 120)]
    for i in range(3):
        color = lit[i] if i == p["state"] else (60, 60, 55)
        cv.disc((bx, y0 + box_h * (5 - 2 * i) / 6, z), 0.1, color, None)


def _draw_tree(cv: _Canvas, o: _Object, x: float, z: float) -> None:
    p = o.p
    cv.fill(_frontal_rect(x - 0.15, x + 0.15, 0.0, p["trunk_h"] + 0.5, z), (80, 60, 45),
            VEGETATION)
    r = p["crown"]
    cy_ = p["trunk_h"] + r * 0.8
    cv.ellipse((x, cy_, z), (r, r * 0.85), p["color"], VEGETATION)
    dark = np.asarray(p["color"]) * 0.7
    cv.ellipse((x + r * 0.3, cy_ - r * 0.25, z), (r * 0.5, r * 0.4), dark, None)


def _draw_person(cv: _Canvas, p: dict, x: float, z: float, y0: float = 0.0,
                 tid: int = PERSON, legs: bool = True) -> None:
    hgt = p["height"]
    if legs:
        st = p["stride"]
        for dx in (-1, 1):
            leg = np.array([[x + dx * 0.04 * hgt, y0 + 0.5 * hgt, z],
                            [x + dx * (0.09 + st * 0.3) * hgt, y0, z],
                            [x + dx * (0.03 + st * 0.3) * hgt, y0, z],
                            [x + dx * 0.0, y0 + 0.5 * hgt, z]])
            cv.fill(leg, p["bottom"], tid)
    torso = np.array([[x - 0.1 * hgt, y0 + 0.48 * hgt, z], [x + 0.1 * hgt, y0 + 0.48 * hgt, z],
                      [x + 0.13 * hgt, y0 + 0.82 * hgt, z], [x - 0.13 * hgt, y0 + 0.82 * hgt, z]])
    cv.fill(torso, p["top"], tid)
    for dx in (-1, 1):
        cv.segment((x + dx * 0.14 * hgt, y0 + 0.8 * hgt, z),
                   (x + dx * 0.17 * hgt, y0 + 0.5 * hgt, z), 0.07, p["top"], tid)
    cv.disc((x, y0 + 0.905 * hgt, z), 0.065 * hgt, p["skin"], tid)


def _draw_bicycle(cv: _Canvas, p: dict, x: float, z: float) -> None:
    color = p["color"]
    if p["view"] == "rear":  # seen from behind: a thin wheel and handlebar
        cv.fill(_frontal_rect(x - 0.03, x + 0.03, 0.0, 0.7, z), (30, 30, 30), BICYCLE)
        cv.fill(_frontal_rect(x - 0.3, x + 0.3, 0.95, 1.0, z), color, BICYCLE)
        return
    r = 0.34
    for dx in (-0.55, 0.55):
        cv.disc((x + dx, r, z), r, (30, 30, 30), BICYCLE, thickness_m=0.05)
    pts = {"rear": (x - 0.55, r), "crank": (x, r), "seat": (x - 0.15, 0.9),
           "head": (x + 0.4, 0.95), "front": (x + 0.55, r)}
    for a, b in (("rear", "crank"), ("crank", "seat"), ("seat", "rear"), ("seat", "head"),
                 ("crank", "head"), ("head", "front")):
        cv.segment((*pts[a], z), (*pts[b], z), 0.04, color, BICYCLE)


def _draw_cyclist(cv: _Canvas, o: _Object, x: float, z: float) -> None:
    _draw_bicycle(cv, o.p, x, z)
    rider = dict(o.p, height=o.p["height"] * 0.62)
    # Seated: torso and head above the saddle, legs down to the crank.
    _draw_person(cv, rider, x - 0.1, z, y0=0.9 - 0.48 * rider["height"], tid=RIDER, legs=False)
    for dx in (-0.08, 0.06):
        cv.segment((x - 0.12, 0.92, z), (x + dx, 0.4, z), 0.1, o.p["bottom"], RIDER)


def _draw_vehicle(cv: _Canvas, o: _Object, x: float, z: float) -> None:
    p = o.p
    w, hgt, length, color = p["w"], p["h"], p["l"], p["color"]
    tid = {"car": CAR, "truck": TRUCK, "bus": BUS}[o.kind]
    dark = np.asarray(color) * 0.55
    glass = (40, 50, 60)
    if abs(x) > w / 2:  # the side facing the camera is visible
        xs = x - np.sign(x) * w / 2
        body_top = hgt * (0.62 if o.kind == "car" else 1.0)
        cv.fill(_side_quad(xs, z, z + length, 0.25, body_top), dark * 1.3, tid)
        if o.kind == "car":
            cabin = np.array([[xs, body_top, z + 1.0], [xs, body_top, z + length - 0.8],
                              [xs, hgt, z + length - 1.4], [xs, hgt, z + 1.6]])
            cv.fill(cabin, dark * 1.3, tid)
            cv.fill(_side_quad(xs, z + 1.7, z + length - 1.5, body_top + 0.05, hgt - 0.07),
                    glass, None)
        elif o.kind == "bus":
            cv.fill(_side_quad(xs, z + 0.5, z + length - 0.5, 1.3, hgt - 0.4), glass, None)
        for zw in (z + 0.8, z + length - 0.9):  # wheels on the side plane (car class)
            ang = np.linspace(0, 2 * np.pi, 10, endpoint=False)
            wheel = np.stack([np.full(10, xs), 0.33 + 0.33 * np.sin(ang),
                              zw + 0.33 * np.cos(ang)], -1)
            cv.fill(wheel, (20, 20, 20), tid)
    # Rear (or front) face at the near end.
    if o.kind == "car":
        cv.fill(_frontal_rect(x - w / 2 + 0.1, x - w / 2 + 0.4, 0.0, 0.3, z), (20, 20, 20), tid)
        cv.fill(_frontal_rect(x + w / 2 - 0.4, x + w / 2 - 0.1, 0.0, 0.3, z), (20, 20, 20), tid)
        cv.fill(_frontal_rect(x - w / 2, x + w / 2, 0.25, hgt * 0.62, z), color, tid)
        cab = np.array([[x - w / 2 + 0.05, hgt * 0.62, z], [x + w / 2 - 0.05, hgt * 0.62, z],
                        [x + w / 2 - 0.25, hgt, z], [x - w / 2 + 0.25, hgt, z]])
        cv.fill(cab, color, tid)
        win = np.array([[x - w / 2 + 0.15, hgt * 0.65, z], [x + w / 2 - 0.15, hgt * 0.65, z],
                        [x + w / 2 - 0.3, hgt - 0.06, z], [x - w / 2 + 0.3, hgt - 0.06, z]])
        cv.fill(win, glass, None)
    else:
        cv.fill(_frontal_rect(x - w / 2, x + w / 2, 0.0, hgt, z), color, tid)
        top = hgt - 0.3 if o.kind == "bus" else 0.9 * hgt
        cv.fill(_frontal_rect(x - w / 2 + 0.15, x + w / 2 - 0.15, hgt * 0.55, top, z),
                glass if o.kind == "bus" else dark, None)
    for dx in (-1, 1):  # lamps and plate: image-only details inside the body
        cv.fill(_frontal_rect(x + dx * (w / 2 - 0.3), x + dx * (w / 2 - 0.08), 0.55, 0.72, z),
                (200, 30, 30), None)
    cv.fill(_frontal_rect(x - 0.26, x + 0.26, 0.35, 0.47, z), (225, 225, 215), None)


_DRAW: dict[str, Callable[[_Canvas, _Object, float, float], None]] = {
    "lamp": _draw_lamp, "sign": _draw_sign, "light": _draw_light, "tree": _draw_tree,
    "person": lambda cv, o, x, z: _draw_person(cv, o.p, x, z),
    "bicycle": lambda cv, o, x, z: _draw_bicycle(cv, o.p, x, z),
    "cyclist": _draw_cyclist, "car": _draw_vehicle, "truck": _draw_vehicle,
    "bus": _draw_vehicle,
}


@functools.lru_cache(maxsize=4)
def _noise_tile(height: int, width: int) -> np.ndarray:
    """A fixed (seed 0) 2H x 2W standard-normal tile; frames take random crops of it, which is
    several times cheaper than drawing fresh noise and still deterministic."""
    return np.random.default_rng(0).standard_normal((2 * height, 2 * width), dtype=np.float32)


def _finish(cv: _Canvas, world: _World, rng: np.random.Generator) -> np.ndarray:
    """Texture, noise and global lighting: image only; returns the uint8 RGB image."""
    h, w = cv.h, cv.w
    low = cv2.resize(rng.standard_normal((h // 8 + 1, w // 8 + 1), dtype=np.float32), (w, h),
                     interpolation=cv2.INTER_LINEAR)
    tile = _noise_tile(h, w)
    oy, ox = int(rng.integers(h)), int(rng.integers(w))
    fine = tile[oy:oy + h, ox:ox + w]
    strength = _TEXTURE[cv.lab]
    # Blotchy low-frequency texture scaled per class + fine grain + sensor noise.
    tex = low * strength
    tex *= 0.6
    tex += fine * (0.5 * strength + world.noise)
    # Contrast around mid-grey, then brightness and colour gains, folded into one affine map.
    gains = np.asarray(world.gains, np.float32) * np.float32(world.brightness)
    scale = gains * np.float32(world.contrast)
    offset = gains * np.float32(110.0 * (1.0 - world.contrast))
    img = cv.img.astype(np.float32)
    img += tex[..., None]
    img *= scale
    img += offset
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def _render_world(world: _World, frame: int, height: int, width: int,
                  noise_rng: np.random.Generator, speed: float) -> tuple[np.ndarray, np.ndarray]:
    cam_z = frame * speed
    cv = _Canvas(height, width, world.focal_frac * width, world.cx_frac * width,
                 world.horizon_frac * height, world.cam_h)
    _draw_ground(cv, world, cam_z)
    # Building shadows across the sidewalk/road on the sun's opposite side, then sun-side tint.
    for b in world.buildings:
        if b.side == -world.sun_side and world.shadow_len > 0:
            z0, z1 = max(b.z0 - cam_z, NEAR_Z), b.z1 - cam_z
            if z1 > NEAR_Z and z0 < FAR_Z:
                x = b.side * (world.road_half + world.sidewalk_w + world.setback)
                reach = min(b.height * world.shadow_len, abs(x) + world.road_half)
                cv.shadow(_ground_quad(x, x - b.side * reach, z0, z1), 0.6)
    objects = []
    for o in world.objects:
        x, z = o.x + o.vx * frame, o.z + o.vz * frame - cam_z
        if NEAR_Z <= z <= FAR_Z:
            objects.append((z, x, o))
    objects.sort(key=lambda t: -t[0])
    # Ground shadows of vehicles and trees must be in the shade map before the ground is shaded.
    for z, x, o in objects:
        if o.kind in ("car", "truck", "bus"):
            cv.shadow(_ground_quad(x - o.p["w"] / 2 - 0.2, x + o.p["w"] / 2 + 0.2,
                                   max(z - 0.3, NEAR_Z), z + o.p["l"]), 0.45)
        elif o.kind == "tree":
            r = o.p["crown"]
            cv.shadow(_ground_quad(x - r, x + r, max(z - r * 0.5, NEAR_Z), z + r * 0.5), 0.7)
    cy = int(np.clip(round(cv.cy), 0, height))
    ground = cv.img[cy:].astype(np.float32) * cv.shade[cy:, :, None]
    cv.img[cy:] = ground.astype(np.uint8)
    _draw_far_band(cv, world)
    for b in sorted(world.buildings, key=lambda b: -b.z0):
        _draw_building(cv, world, b, cam_z)
    for edge in world.edges:
        _draw_edge(cv, world, edge, cam_z)
    for z, x, o in objects:
        _DRAW[o.kind](cv, o, x, z)
    image = _finish(cv, world, noise_rng)
    return image, cv.lab


def hash_name(text: str) -> int:
    """A stable (process-independent) 32-bit hash; Python's hash() is salted per process."""
    return zlib.crc32(text.encode())


def _streams(seed: int, *keys: int) -> tuple[np.random.Generator, np.random.Generator]:
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *keys])
    world_ss, noise_ss = ss.spawn(2)
    return np.random.default_rng(world_ss), np.random.default_rng(noise_ss)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def render_scene(seed: int, height: int = 512, width: int = 1024,
                 *keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one random street scene.

    Args:
        seed: any integer; the same seed gives byte-identical outputs.
        height, width: output size in pixels.
        keys: further integers mixed into the seed (a dataset's split and frame index).

    Returns:
        image: H x W x 3 uint8 RGB.
        train_ids: H x W uint8 Cityscapes train ids (every pixel labelled).
    """
    world_rng, noise_rng = _streams(seed, *keys)
    world = _make_world(world_rng, length=0.0)
    return _render_world(world, 0, height, width, noise_rng, speed=0.0)


def render_sequence(seed: int, n: int, height: int = 512, width: int = 1024,
                    speed: float = 0.8) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render ``n`` temporally coherent frames of one street, the camera driving forward.

    The world is fixed by the seed; frame t sees it from ``t * speed`` metres further on, with
    other road users moving on their own. Only the sensor noise changes independently per frame.

    Args:
        seed: world seed.
        n: number of frames.
        height, width: frame size.
        speed: camera advance per frame in metres (0.8 m at 10 Hz is about 29 km/h).

    Yields:
        (image H x W x 3 uint8 RGB, train_ids H x W uint8) per frame.
    """
    world_rng, _ = _streams(seed)
    world = _make_world(world_rng, length=max(n, 1) * speed)
    for frame in range(n):
        _, noise_rng = _streams(seed, 1, frame)
        yield _render_world(world, frame, height, width, noise_rng, speed)


def cityscapes_paths(out_root: Path, split: str, city: str, seq: int,
                     frame: int) -> tuple[Path, Path]:
    """(image path, labelIds path) of one frame in the official Cityscapes layout."""
    stem = f"{city}_{seq:06d}_{frame:06d}"
    return (out_root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
            out_root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")


def write_sample(image: np.ndarray, train_ids: np.ndarray, image_path: Path,
                 label_path: Path) -> None:
    """Write one frame as Cityscapes files: RGB PNG, labelIds PNG and instanceIds PNG.

    instanceIds (= labelIds, i.e. no instances) is written so that cityscapesscripts'
    evaluation, which opens it by default, runs on the generated folder.
    """
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    label_ids = train_ids_to_label_ids(train_ids)
    ok = cv2.imwrite(str(image_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    ok &= cv2.imwrite(str(label_path), label_ids)
    inst_path = label_path.with_name(label_path.name.replace("_labelIds", "_instanceIds"))
    ok &= cv2.imwrite(str(inst_path), label_ids)
    if not ok:
        raise OSError(f"cannot write {image_path} / {label_path}")


def write_dataset(out_root: str | Path, n_frames: int, split: str = "train", height: int = 512,
                  width: int = 1024, seed: int = 0, sequence: bool = False, city: str = CITY,
                  progress: bool = False) -> list[Path]:
    """Write a synthetic dataset in Cityscapes layout (read it with ``CityscapesDataset``).

    Independent scenes get sequence number i and frame 0; a sequence is sequence 0, frames
    0..n-1. The split name is mixed into the seed so train and val written with the same seed
    differ.

    Args:
        out_root: dataset root (``leftImg8bit/`` and ``gtFine/`` are created in it).
        n_frames: number of frames.
        split: split folder name.
        height, width: frame size.
        seed: base seed.
        sequence: write one temporally coherent drive instead of independent scenes.
        city: city name in the folders and file names.
        progress: show a tqdm bar.

    Returns:
        The written image paths, in order.
    """
    out_root = Path(out_root)
    split_key = hash_name(split)
    if sequence:
        frames = render_sequence(seed * 7919 + split_key, n_frames, height, width)
        items = ((0, t, frame) for t, frame in enumerate(frames))
    else:
        items = ((i, 0, render_scene(seed, height, width, split_key, i))
                 for i in range(n_frames))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=n_frames, desc=f"synthetic {split}", unit="frame")
    paths = []
    for seq, frame, (image, train_ids) in items:
        image_path, label_path = cityscapes_paths(out_root, split, city, seq, frame)
        write_sample(image, train_ids, image_path, label_path)
        paths.append(image_path)
    logger.info("wrote %d frames to %s (split %s)", len(paths), out_root, split)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bisestdc_core.data.synthetic",
        description="Write synthetic street scenes with Cityscapes labels in Cityscapes layout.")
    parser.add_argument("--out", required=True, type=Path, help="dataset root to write")
    parser.add_argument("--frames", type=int, default=100, help="number of frames")
    parser.add_argument("--split", default="train", help="split folder name (train, val, ...)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequence", action="store_true",
                        help="one temporally coherent drive instead of independent scenes")
    parser.add_argument("--city", default=CITY, help="city name used in paths")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    write_dataset(args.out, args.frames, args.split, args.height, args.width, args.seed,
                  sequence=args.sequence, city=args.city, progress=True)


if __name__ == "__main__":
    main()
