"""The scene graph of the procedural world: what is in a scene, sampled deterministically from a seed.

The scene graph is the single source every modality derives from (the renderer draws it, the
captioner describes it), so it is plain data that round-trips through JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ...errors import ConfigError

SHAPES = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (190, 40, 40), "blue": (45, 80, 215), "green": (40, 150, 50), "yellow": (235, 215, 50),
    "purple": (130, 50, 190), "cyan": (45, 200, 205), "orange": (240, 135, 40), "brown": (125, 80, 40),
    "gray": (120, 120, 120), "pink": (240, 150, 195),
}
SIZES: dict[str, float] = {"small": 0.4, "large": 0.7}
MATERIALS = ("matte", "metal")
SEMSEG_CLASSES = ("background", "floor", "wall") + SHAPES

ROOM_HALF_WIDTH = 5.0
BACK_WALL_Z = 4.5
WALL_HEIGHT = 3.0
MAX_OBJECTS = 6
_PLACEMENT_GAP = 0.1  # metres of free floor between footprints, so no two objects touch


@dataclass(frozen=True)
class SceneObject:
    """One object resting on the floor; `x`, `z` is its footprint centre in world metres."""

    shape: str
    color: str
    size: str
    material: str
    x: float
    z: float
    yaw: float = 0.0

    @property
    def scale(self) -> float:
        return SIZES[self.size]

    @property
    def footprint_radius(self) -> float:
        """Radius of a floor circle that contains the object, for collision-free placement."""
        s = self.scale
        return {"sphere": s, "cube": 0.8 * s * math.sqrt(2), "cylinder": 0.8 * s, "cone": 0.9 * s,
                "torus": 1.05 * s, "pyramid": 0.9 * s * math.sqrt(2)}[self.shape]

    @property
    def height(self) -> float:
        s = self.scale
        return {"sphere": 2 * s, "cube": 1.6 * s, "cylinder": 1.6 * s, "cone": 2 * s,
                "torus": 0.6 * s, "pyramid": 1.8 * s}[self.shape]

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.x, self.height / 2, self.z], np.float32)

    @property
    def bounding_radius(self) -> float:
        return math.hypot(self.footprint_radius, self.height / 2) * 1.001

    @property
    def phrase(self) -> str:
        """The unique description used in captions: size, colour, material, shape."""
        return f"{self.size} {self.color} {self.material} {self.shape}"


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking from `position` at `target` with a horizontal field of view."""

    position: tuple[float, float, float]
    target: tuple[float, float, float]
    fov_deg: float

    def basis(self) -> np.ndarray:
        """Rows: right, down, forward in world coordinates (the OpenCV camera frame)."""
        fwd = np.subtract(self.target, self.position).astype(np.float32)
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, np.array([0, 1, 0], np.float32))
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        return np.stack([right, down, fwd]).astype(np.float32)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) to camera-frame coordinates (x right, y down, z forward)."""
        return (np.asarray(points, np.float32) - np.asarray(self.position, np.float32)) @ self.basis().T


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one scene and describe it."""

    seed: int
    objects: tuple[SceneObject, ...]
    camera: Camera
    light_dir: tuple[float, float, float]  # unit vector pointing towards the light
    floor_color: tuple[int, int, int]
    wall_color: tuple[int, int, int]
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["objects"] = [asdict(o) for o in self.objects]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        return cls(
            seed=int(d["seed"]),
            objects=tuple(SceneObject(**o) for o in d["objects"]),
            camera=Camera(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["camera"].items()}),
            light_dir=tuple(d["light_dir"]),
            floor_color=tuple(d["floor_color"]),
            wall_color=tuple(d["wall_color"]),
            meta=dict(d.get("meta", {})),
        )


def _fits(candidate: SceneObject, placed: list[SceneObject]) -> bool:
    return all(
        math.hypot(candidate.x - o.x, candidate.z - o.z) >= candidate.footprint_radius + o.footprint_radius + _PLACEMENT_GAP
        for o in placed
    )


def sample_scene(seed: int, num_objects: int | None = None) -> Scene:
    """Sample a scene from `seed` alone (same seed, same scene, on every machine).

    Attribute combinations are unique within a scene so every caption phrase names exactly one
    object; placement rejects overlapping footprints, so objects never interpenetrate.
    """
    if num_objects is not None and not 1 <= num_objects <= MAX_OBJECTS:
        raise ConfigError(f"num_objects must be in 1..{MAX_OBJECTS}, got {num_objects}")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, MAX_OBJECTS + 1)) if num_objects is None else num_objects
    placed: list[SceneObject] = []
    for _ in range(200):
        if len(placed) == n:
            break
        cand = SceneObject(
            shape=SHAPES[rng.integers(len(SHAPES))],
            color=list(COLORS)[rng.integers(len(COLORS))],
            size=list(SIZES)[rng.integers(len(SIZES))],
            material=MATERIALS[rng.integers(len(MATERIALS))],
            x=round(float(rng.uniform(-2.2, 2.2)), 4),
            z=round(float(rng.uniform(-1.6, 2.6)), 4),
            yaw=round(float(rng.uniform(0, math.pi / 2)), 4),
        )
        if cand.phrase not in {o.phrase for o in placed} and _fits(cand, placed):
            placed.append(cand)
    camera = Camera(
        position=(float(rng.uniform(-0.8, 0.8)), float(rng.uniform(3.4, 4.4)), float(rng.uniform(-6.6, -5.6))),
        target=(float(rng.uniform(-0.4, 0.4)), float(rng.uniform(0.2, 0.7)), float(rng.uniform(0.0, 0.8))),
        fov_deg=float(rng.uniform(46, 54)),
    )
    # From one side and above, so cast shadows fall sideways where the camera sees them.
    light = np.array([rng.choice([-1, 1]) * rng.uniform(0.4, 0.9), rng.uniform(0.9, 1.4), rng.uniform(-0.6, 0.2)])
    light /= np.linalg.norm(light)
    floor = tuple(int(c) for c in rng.integers(150, 215, 3))
    wall_base = rng.integers(170, 235)
    wall = tuple(int(np.clip(wall_base + t, 0, 255)) for t in rng.integers(-25, 26, 3))
    return Scene(seed=int(seed), objects=tuple(placed), camera=camera,
                 light_dir=tuple(float(v) for v in light), floor_color=floor, wall_color=wall)
