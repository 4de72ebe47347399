"""Drawing a synthetic world (:mod:`.synthetic_world`) through a pinhole camera: every shape
into the RGB image and the train-id map with the same polygon, then texture, shadows and light
on the image only. The public API is :mod:`.synthetic`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np

from bisestdc_core.classes import IGNORE_INDEX
from bisestdc_core.data.synthetic_world import (
    BICYCLE,
    BUILDING,
    BUS,
    CAR,
    FAR_Z,
    FENCE,
    LIGHT,
    NEAR_Z,
    PERSON,
    POLE,
    RIDER,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    TERRAIN,
    TRUCK,
    VEGETATION,
    WALL,
    Building,
    SceneObject,
    World,
    clamp_color,
)

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
        cv2.fillPoly(self.img, pix, clamp_color(color), cv2.LINE_8, SHIFT)
        if tid is not None:
            cv2.fillPoly(self.lab, pix, int(tid), cv2.LINE_8, SHIFT)

    def disc(self, center: tuple[float, float, float], radius: float, color, tid: int | None,
             thickness_m: float = 0.0) -> None:
        """A circle in the frontal plane through ``center``; a ring if thickness_m > 0."""
        c = self.project(np.asarray(center))
        r = max(int(round(radius * self.scale(center[2]) * _ONE)), _ONE // 2)
        thick = -1 if thickness_m <= 0 else max(1, int(round(thickness_m * self.scale(center[2]))))
        cv2.circle(self.img, (int(c[0]), int(c[1])), r, clamp_color(color), thick, cv2.LINE_8,
                   SHIFT)
        if tid is not None:
            cv2.circle(self.lab, (int(c[0]), int(c[1])), r, int(tid), thick, cv2.LINE_8, SHIFT)

    def ellipse(self, center: tuple[float, float, float], axes: tuple[float, float], color,
                tid: int | None) -> None:
        """A filled ellipse in the frontal plane through ``center`` (axes in metres)."""
        c = self.project(np.asarray(center))
        s = self.scale(center[2]) * _ONE
        ax = (max(int(round(axes[0] * s)), _ONE // 2), max(int(round(axes[1] * s)), _ONE // 2))
        args = ((int(c[0]), int(c[1])), ax, 0.0, 0.0, 360.0)
        cv2.ellipse(self.img, *args, clamp_color(color), -1, cv2.LINE_8, SHIFT)
        if tid is not None:
            cv2.ellipse(self.lab, *args, int(tid), -1, cv2.LINE_8, SHIFT)

    def segment(self, p0, p1, width_m: float, color, tid: int | None) -> None:
        """A line segment between two world points, at least one pixel thick."""
        a, b = self.project(np.asarray([p0, p1]))
        z = min(p0[2], p1[2])
        thick = max(1, int(round(width_m * self.scale(z))))
        cv2.line(self.img, tuple(map(int, a)), tuple(map(int, b)), clamp_color(color), thick,
                 cv2.LINE_8, SHIFT)
        if tid is not None:
            cv2.line(self.lab, tuple(map(int, a)), tuple(map(int, b)), int(tid), thick,
                     cv2.LINE_8, SHIFT)

    def shadow(self, polys: np.ndarray, factor: float) -> None:
        """Darken the ground under world polygons (image only, applied with the ground)."""
        if polys.ndim == 2:
            polys = polys[None]
        cv2.fillPoly(self.shade, list(self.project(polys)), float(factor), cv2.LINE_8, SHIFT)


def _frontal_rect(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], np.float64)


def _ground_quad(x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
    return np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]], np.float64)


def _side_quad(x: float, z0: float, z1: float, y0: float, y1: float) -> np.ndarray:
    """A vertical quad in the plane X = x (facades, car sides)."""
    return np.array([[x, y0, z0], [x, y0, z1], [x, y1, z1], [x, y1, z0]], np.float64)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _draw_ground(cv: _Canvas, world: World, cam_z: float) -> None:
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
    paint = clamp_color(np.asarray(world.road_color) * 0.4 + 150)
    cv.fill(marks, paint, None)


def _draw_far_band(cv: _Canvas, world: World) -> None:
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


def _draw_building(cv: _Canvas, world: World, b: Building, cam_z: float) -> None:
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


def _draw_edge(cv: _Canvas, world: World, edge: tuple, cam_z: float) -> None:
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


def _draw_lamp(cv: _Canvas, o: SceneObject, x: float, z: float) -> None:
    p = o.p
    w = p["width"] / 2
    cv.fill(_frontal_rect(x - w, x + w, 0.0, p["height"], z), (95, 95, 100), POLE)
    arm = -p["side"] * 1.5
    cv.segment((x, p["height"] - 0.1, z), (x + arm, p["height"] + 0.1, z), 0.08, (95, 95, 100),
               POLE)
    cv.fill(_frontal_rect(x + arm - 0.3, x + arm + 0.3, p["height"] - 0.05, p["height"] + 0.15,
                          z), (70, 70, 70), POLE)


def _draw_sign(cv: _Canvas, o: SceneObject, x: float, z: float) -> None:
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


def _draw_light(cv: _Canvas, o: SceneObject, x: float, z: float) -> None:
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


def _draw_tree(cv: _Canvas, o: SceneObject, x: float, z: float) -> None:
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


def _draw_cyclist(cv: _Canvas, o: SceneObject, x: float, z: float) -> None:
    _draw_bicycle(cv, o.p, x, z)
    rider = dict(o.p, height=o.p["height"] * 0.62)
    # Seated: torso and head above the saddle, legs down to the crank.
    _draw_person(cv, rider, x - 0.1, z, y0=0.9 - 0.48 * rider["height"], tid=RIDER, legs=False)
    for dx in (-0.08, 0.06):
        cv.segment((x - 0.12, 0.92, z), (x + dx, 0.4, z), 0.1, o.p["bottom"], RIDER)


def _draw_vehicle(cv: _Canvas, o: SceneObject, x: float, z: float) -> None:
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


_DRAW: dict[str, Callable[[_Canvas, SceneObject, float, float], None]] = {
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


def _finish(cv: _Canvas, world: World, rng: np.random.Generator) -> np.ndarray:
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


def render_world(world: World, frame: int, height: int, width: int,
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
