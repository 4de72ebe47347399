"""The 3-D street world a synthetic scene is drawn from: the classes the generator draws and
a random layout (road, sidewalks, buildings, street furniture, traffic, people) from one random
stream. Drawing it is :mod:`.synthetic_render`; the public API is :mod:`.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bisestdc_core.classes import CITYSCAPES

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

NEAR_Z = 1.5  # metres; nearer objects are culled (their projection would explode)
FAR_Z = 180.0  # metres; objects beyond are sub-pixel


def clamp_color(c) -> tuple[int, int, int]:
    # Plain Python: this runs thousands of times per frame; np.clip per scalar is slow.
    return tuple(min(255, max(0, int(v))) for v in c)


# --------------------------------------------------------------------------------------------
# World description
# --------------------------------------------------------------------------------------------


@dataclass
class SceneObject:
    """One movable/standing thing: kind names a draw function; z is the near face."""

    kind: str
    x: float
    z: float
    vx: float = 0.0  # metres per frame
    vz: float = 0.0
    p: dict = field(default_factory=dict)


@dataclass
class Building:
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
class World:
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
    return clamp_color(np.asarray(base, float) + rng.uniform(-jitter, jitter, 3))


def make_world(rng: np.random.Generator, length: float) -> World:
    """Random street layout over Z in [0, length + FAR_Z]."""
    overcast = rng.random() < 0.35
    sky_top = (150, 160, 170) if overcast else (60, 120, 200)
    sky_hor = (200, 205, 210) if overcast else (170, 200, 230)
    n_lanes = int(rng.integers(2, 5))
    lane_w = rng.uniform(3.0, 3.6)
    road_half = n_lanes * lane_w / 2
    sidewalk_w = rng.uniform(2.0, 4.5)
    world = World(
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


def _add_buildings(rng: np.random.Generator, world: World, z_end: float) -> None:
    palette = [(150, 140, 130), (120, 110, 105), (170, 160, 140), (140, 90, 70), (110, 115, 125),
               (190, 185, 175)]
    for side in (-1, 1):
        z = rng.uniform(-10, 5)
        while z < z_end:
            length = rng.uniform(8, 40)
            if rng.random() < 0.8:  # else a gap (alley / open lot showing sky)
                base = palette[int(rng.integers(len(palette)))]
                world.buildings.append(Building(
                    side=side, z0=z, z1=z + length, height=rng.uniform(6, 30),
                    depth=rng.uniform(8, 20), color=_rand_color(rng, base, 15),
                    window_color=_rand_color(rng, (50, 60, 75), 20),
                    floor_h=rng.uniform(2.8, 3.6), win_pitch=rng.uniform(2.5, 4.0)))
            z += length + (rng.uniform(0.0, 3.0) if rng.random() < 0.7 else rng.uniform(5, 15))


def _add_edges(rng: np.random.Generator, world: World, z_end: float) -> None:
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


def _add_street_furniture(rng: np.random.Generator, world: World, z_end: float) -> None:
    rh, sw = world.road_half, world.sidewalk_w
    for side in (-1, 1):
        # Street lamps at a regular pitch: long thin poles.
        pitch = rng.uniform(18, 35)
        for z in np.arange(rng.uniform(3, pitch), z_end, pitch):
            world.objects.append(SceneObject("lamp", side * (rh + 0.4), float(z), p={
                "height": rng.uniform(6, 9), "width": rng.uniform(0.12, 0.22), "side": side}))
        # Trees on the sidewalk.
        if rng.random() < 0.75:
            pitch = rng.uniform(8, 20)
            for z in np.arange(rng.uniform(0, pitch), z_end, pitch):
                if rng.random() < 0.8:
                    world.objects.append(SceneObject(
                        "tree", side * (rh + sw * rng.uniform(0.6, 0.9)), float(z), p={
                        "trunk_h": rng.uniform(1.8, 3.0), "crown": rng.uniform(1.2, 3.0),
                        "color": world.veg_colors[int(rng.integers(len(world.veg_colors)))]}))
        # Signs, near and far, on their own posts.
        z = rng.uniform(4, 15)
        while z < z_end:
            world.objects.append(SceneObject("sign", side * (rh + rng.uniform(0.3, 0.8)), z, p={
                "shape": str(rng.choice(["circle", "triangle", "square", "rect"])),
                "size": rng.uniform(0.45, 0.8), "height": rng.uniform(2.0, 3.2),
                "style": int(rng.integers(3))}))
            z += rng.uniform(8, 30)
    # Traffic lights: side posts plus an overhead one at each junction.
    z = rng.uniform(10, 35)
    while z < z_end:
        for side in (-1, 1):
            world.objects.append(SceneObject("light", side * (rh + 0.5), z, p={
                "overhead": False, "state": int(rng.integers(3)), "height": rng.uniform(2.4, 3.2),
                "back": bool(rng.random() < 0.3)}))
        if rng.random() < 0.7:
            side = int(rng.choice([-1, 1]))
            world.objects.append(SceneObject("light", side * (rh + 0.5), z + 0.5, p={
                "overhead": True, "state": int(rng.integers(3)), "height": 5.5,
                "reach": rng.uniform(2.5, rh + 0.5), "side": side, "back": False}))
        z += rng.uniform(25, 70)


def _add_traffic(rng: np.random.Generator, world: World, z_end: float) -> None:
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
            world.objects.append(SceneObject(kind, x + rng.uniform(-0.3, 0.3), z,
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
                world.objects.append(SceneObject("car", side * (rh - 1.1), z, p={
                    "w": rng.uniform(1.65, 1.85), "h": rng.uniform(1.35, 1.55),
                    "l": rng.uniform(3.9, 4.6),
                    "color": _rand_color(rng, (rng.uniform(30, 220),) * 3, 40)}))
            z += rng.uniform(5.5, 14)


def _person_params(rng: np.random.Generator) -> dict:
    return {"height": rng.uniform(1.5, 1.9), "top": _rand_color(rng, (120, 100, 100), 90),
            "bottom": _rand_color(rng, (60, 60, 80), 50),
            "skin": _rand_color(rng, (180, 140, 110), 50), "stride": rng.uniform(0, 0.25)}


def _add_people(rng: np.random.Generator, world: World, z_end: float) -> None:
    rh, sw = world.road_half, world.sidewalk_w
    for side in (-1, 1):
        z = rng.uniform(3, 12)
        while z < z_end:
            world.objects.append(SceneObject("person", side * (rh + rng.uniform(0.4, sw - 0.3)), z,
                                         vz=rng.uniform(-0.15, 0.15), p=_person_params(rng)))
            if rng.random() < 0.15:  # parked bicycle next to a pedestrian
                world.objects.append(SceneObject("bicycle", side * (rh + sw - 0.4), z + 1.0, p={
                    "color": _rand_color(rng, (100, 100, 100), 90), "view": "side"}))
            z += rng.uniform(3, 25)
    z = rng.uniform(8, 25)
    while z < z_end:  # cyclists: along the kerb (rear view) or crossing (side view)
        crossing = rng.random() < 0.5
        x = rng.uniform(-rh, rh) if crossing else rng.choice([-1, 1]) * (rh - 0.7)
        p = _person_params(rng)
        p.update(color=_rand_color(rng, (100, 100, 100), 90), view="side" if crossing else "rear")
        world.objects.append(SceneObject("cyclist", float(x), z,
                                         vx=rng.uniform(-0.4, 0.4) * crossing,
                                         vz=0.0 if crossing else rng.uniform(0.1, 0.4), p=p))
        z += rng.uniform(15, 45)
    for zc in np.cumsum(rng.uniform(30, 90, 6)):  # pedestrians on the road (crossing)
        world.objects.append(SceneObject("person", rng.uniform(-rh, rh), float(zc),
                                     vx=rng.uniform(-0.12, 0.12), p=_person_params(rng)))
