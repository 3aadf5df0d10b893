"""The Pathfinder stimulus (Linsley et al. 2018; Kim et al. 2020) at Long Range Arena's 32x32 parameters, drawn
by our own generator: two long curves ("snakes") and short distractor curves on black, and two round markers;
the label says whether both markers sit on the same snake. `pathfinder.py` writes and reads the release files.

How an image is drawn (`draw`; lengths in pixels, pixel (r, c) centred at (r, c)):
- A snake is a chain of `contour_length` steps of `paddle_length + 2 * margin` (2 + 2 = 4) pixels. Headings
  lie on a grid of one pixel of arc at that radius (25 directions). The first heading is uniform; each next one
  turns from the last with weight cos^2(continuity * turn), zero from 90 degrees on (continuity 1.0), among the
  turns whose stroke stays clear. Points are kept in eighths of a pixel.
- Clear: a snake's drawn pixels never come within `margin` pixels (8-neighbourhood) of the drawn pixels of
  another snake or of a marker's place, nor of its own steps older than the previous one (no self-crossing),
  nor of the `padding` border.
- The two target snakes start `seed_distance` (7) apart near the centre (the first start at least
  2 * seed_distance from the border, as published) and grow in turn. Both ends of both are markers' places,
  kept clear of the other snakes; a pair that cannot finish is drawn again.
- Then `distractor_budget // distractor_length` distractors (20 // (contour_length // 3)) of
  `contour_length // 3` steps, each from a free pixel; one that cannot finish is tried again up to
  `max_distractor_retrial` times and then left out (the published generator does the same).
- Label (a fair coin per image): 1 puts the markers on both ends of one target snake, 0 on one end of each.
- Rendering: strokes `paddle_thickness` (0.5) wide with an antialiased edge of 1 / `antialias` pixel, at
  `snake_contrast * paddle_contrast` (1.5) clipped to white; markers are white discs of `marker_radius` (1.5).
  A pixel gets ink when its centre is within thickness / 2 + 1 / antialias (0.75) of a stroke, so every pixel
  a stroke passes through has ink. The published generator draws only a 2-pixel paddle in the middle of each
  step (dashes, with gaps as wide as the space between two snakes); we draw the whole step, so a snake is one
  connected stroke and the markers are joined by drawn pixels exactly when the label is 1 (tested).
  `dashed=True` draws the same snakes as published dashes.

Seeding: image i uses `numpy.random.default_rng([seed, contour_length, i])` (`image_rng`), so an image does not
depend on how many are drawn, in which shard, or by which worker.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np


EIGHTHS = 8  # points are integers in eighths of a pixel
GENERATOR_VERSION = 1  # raise when the same seed would give other images (cached sets carry it in their name)


@dataclass(frozen=True)
class Settings:
    """The generator's parameters: LRA's pathfinder32 values (the release's contour lengths: 6, 9, 14)."""

    contour_length: int = 14
    size: int = 32
    padding: int = 1
    paddle_length: float = 2.0
    paddle_thickness: float = 0.5
    margin: int = 1
    marker_radius: float = 1.5
    antialias: int = 2
    seed_distance: int = 7
    continuity: float = 1.0
    snake_contrast: float = 2.0
    paddle_contrast: float = 0.75
    distractor_budget: int = 20
    max_paddle_retrial: int = 2
    max_distractor_retrial: int = 4
    max_pair_retrial: int = 1000
    dashed: bool = False

    @property
    def distractor_length(self) -> int:
        return self.contour_length // 3

    @property
    def num_distractors(self) -> int:
        return self.distractor_budget // self.distractor_length if self.distractor_length else 0

    @property
    def step(self) -> float:
        return self.paddle_length + 2 * self.margin

    @property
    def edge(self) -> float:
        return 1.0 / self.antialias

    @property
    def stroke_extent(self) -> float:
        """Distance from a stroke's axis within which a pixel centre gets ink."""
        return self.paddle_thickness / 2 + self.edge

    @property
    def marker_extent(self) -> float:
        return self.marker_radius + self.edge


@dataclass
class Sample:
    image: np.ndarray  # (size, size) uint8
    label: int
    markers: tuple  # the two marker centres (y, x)
    snakes: list  # each snake's points (steps + 1, 2) in pixels; the two target snakes first
    distractors_left_out: int


# ----------------------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------------------


def _segment_distance2(centres: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(K, M) squared distances from M points (M, 2) to the K segments starts[k] -> ends[k] (K, 2)."""
    along_y, along_x = (ends[:, 0] - starts[:, 0])[:, None], (ends[:, 1] - starts[:, 1])[:, None]
    offset_y, offset_x = centres[:, 0][None] - starts[:, :1], centres[:, 1][None] - starts[:, 1:]
    t = np.clip((offset_y * along_y + offset_x * along_x) / (along_y * along_y + along_x * along_x), 0.0, 1.0)
    gap_y, gap_x = offset_y - t * along_y, offset_x - t * along_x
    return gap_y * gap_y + gap_x * gap_x


def _disc_distance2(centres: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(K, M) squared distances from M points (M, 2) to K points (K, 2)."""
    gap_y, gap_x = centres[:, 0][None] - points[:, :1], centres[:, 1][None] - points[:, 1:]
    return gap_y * gap_y + gap_x * gap_x


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of the last two axes by a (2 radius + 1)^2 square (rows, then columns); the caller's
    window leaves room at its edges."""
    out = mask.copy()
    for shift in range(1, radius + 1):
        out[..., shift:, :] |= mask[..., :-shift, :]
        out[..., :-shift, :] |= mask[..., shift:, :]
    rows = out.copy()
    for shift in range(1, radius + 1):
        out[..., shift:] |= rows[..., :-shift]
        out[..., :-shift] |= rows[..., shift:]
    return out


@dataclass(frozen=True)
class _Strokes:
    """Every step a snake can take, precomputed: from a point at fraction (fy, fx) eighths of its pixel, in
    direction d, the step's offset in eighths and, on the window of half-size `half` around the pixel, the
    pixels it inks and those within the margin of them."""

    directions: int
    offsets: np.ndarray  # (directions, 2) int, eighths
    half: int
    ink: np.ndarray  # (EIGHTHS, EIGHTHS, directions, (2 half + 1)^2) bool
    near: np.ndarray  # the same, dilated by the margin
    turns: np.ndarray  # the direction changes allowed
    turn_weights: np.ndarray  # cos^2(continuity * turn)


@functools.lru_cache(maxsize=8)
def _strokes(settings: Settings) -> _Strokes:
    directions = round(2 * math.pi * settings.step)
    angles = 2 * math.pi * np.arange(directions) / directions
    offsets = np.rint(EIGHTHS * settings.step * np.stack([np.sin(angles), np.cos(angles)], -1)).astype(int)
    half = math.ceil(settings.step + settings.stroke_extent) + 1 + settings.margin
    side = 2 * half + 1
    grid = np.stack(np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij"), -1)
    grid = grid.reshape(-1, 2).astype(float)
    ink = np.zeros((EIGHTHS, EIGHTHS, directions, side * side), dtype=bool)
    for fy in range(EIGHTHS):
        for fx in range(EIGHTHS):
            start = np.array([[fy, fx]]) / EIGHTHS
            ends = start + offsets / EIGHTHS
            ink[fy, fx] = _segment_distance2(grid, np.repeat(start, directions, 0), ends) < settings.stroke_extent ** 2
    near = _dilate(ink.reshape(EIGHTHS, EIGHTHS, directions, side, side), settings.margin).reshape(ink.shape)
    spacing = 2 * math.pi / directions
    count = math.ceil(math.pi / 2 / settings.continuity / spacing) - 1  # turns below 90 / continuity degrees
    turns = np.arange(-count, count + 1)
    return _Strokes(directions, offsets, half, ink, near, turns,
                    np.cos(settings.continuity * spacing * turns) ** 2)


# ----------------------------------------------------------------------------------------------------------
# The canvas: who occupies what
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Snake:
    points: list  # int eighths (y, x)
    ink: np.ndarray  # pixels inked or reserved for a marker, on the padded canvas
    near: np.ndarray  # ink dilated by the margin
    old: np.ndarray  # own steps older than the previous one, dilated: no self-crossing
    last: tuple | None = None  # (window, near) of the previous step
    counted: bool = False  # whether `near` is in the canvas' cover count
    direction: int | None = None


class _Canvas:
    """Occupancy on a canvas padded by `halo` blocked pixels, so that every window lies inside it."""

    def __init__(self, settings: Settings, rng: np.random.Generator):
        self.settings, self.rng = settings, rng
        self.strokes = _strokes(settings)
        self.marker_half = math.ceil(settings.marker_extent) + 1 + settings.margin
        self.halo = max(self.strokes.half, self.marker_half) + 1
        full = settings.size + 2 * self.halo
        self.shape = (full, full)
        self.border = np.ones(self.shape, dtype=bool)
        inner = slice(self.halo + settings.padding, self.halo + settings.size - settings.padding)
        self.border[inner, inner] = False
        self.cover = np.zeros(self.shape, dtype=np.uint8)  # how many counted snakes are near each pixel
        self.low, self.high = settings.padding * EIGHTHS, (settings.size - 1 - settings.padding) * EIGHTHS
        self.snakes: list[_Snake] = []

    def new_snake(self, pixel: np.ndarray, counted: bool) -> _Snake:
        masks = (np.zeros(self.shape, dtype=bool) for _ in range(3))
        snake = _Snake([np.asarray(pixel, dtype=int) * EIGHTHS], *masks, counted=counted)
        self.snakes.append(snake)
        return snake

    def window(self, pixel: np.ndarray, half: int) -> tuple[slice, slice]:
        top = pixel + self.halo - half
        return slice(top[0], top[0] + 2 * half + 1), slice(top[1], top[1] + 2 * half + 1)

    def blocked(self, snake: _Snake, where) -> np.ndarray:
        """The pixels of the window `where` that `snake` must not ink."""
        others = self.cover[where] > (snake.near[where] if snake.counted else 0)
        return self.border[where] | others | snake.old[where]

    def _occupy(self, snake: _Snake, where, ink: np.ndarray, near: np.ndarray) -> None:
        snake.ink[where] |= ink
        if snake.counted:
            self.cover[where] += near & ~snake.near[where]
        snake.near[where] |= near

    def count(self, snake: _Snake) -> None:
        """A finished distractor starts to block the others."""
        self.cover += snake.near
        snake.counted = True

    def drop(self, snake: _Snake) -> None:
        if snake.counted:
            self.cover -= snake.near
        self.snakes.remove(snake)

    def reserve_marker(self, snake: _Snake, point: np.ndarray, check: bool = True) -> bool:
        """Keep the disc of a marker at `point` (eighths) clear of other snakes; False if it is not clear now (an
        end's disc was checked with the step that made it)."""
        settings, half = self.settings, self.marker_half
        pixel = point // EIGHTHS
        where = self.window(pixel, half)
        offsets = np.arange(-half, half + 1)
        centres = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2) + pixel
        ink = (_disc_distance2(centres, point[None] / EIGHTHS)[0] < settings.marker_extent ** 2).reshape(
            2 * half + 1, -1)
        if check and (ink & self.blocked(snake, where)).any():
            return False
        self._occupy(snake, where, ink, _dilate(ink, settings.margin))
        return True

    def step(self, snake: _Snake, marker_at_end: bool = False) -> bool:
        """Add one step to `snake` (the first in a random direction, tried again up to `max_paddle_retrial`
        times; later ones turning from the last); False when no step is clear."""
        settings, strokes, rng = self.settings, self.strokes, self.rng
        start = snake.points[-1]
        pixel, fraction = start // EIGHTHS, start % EIGHTHS
        where = self.window(pixel, strokes.half)
        blocked = self.blocked(snake, where).reshape(-1)
        side = 2 * strokes.half + 1
        first = snake.direction is None
        for _ in range(settings.max_paddle_retrial + 1 if first else 1):
            if first:
                candidates, weights = np.array([rng.integers(strokes.directions)]), np.ones(1)
            else:
                candidates, weights = (snake.direction + strokes.turns) % strokes.directions, strokes.turn_weights
            clear = ~(strokes.ink[fraction[0], fraction[1], candidates] & blocked).any(1)
            ends = start + strokes.offsets[candidates]
            clear &= ((ends >= self.low) & (ends <= self.high)).all(1)  # a step ends inside the padding
            if marker_at_end and clear.any():
                offsets = np.arange(-strokes.half, strokes.half + 1)
                centres = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2) + pixel
                disc = _disc_distance2(centres[blocked], ends / EIGHTHS) < settings.marker_extent ** 2
                clear &= ~disc.any(1)
            if not clear.any():
                continue
            cumulative = np.cumsum(weights * clear)
            choice = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
            direction = int(candidates[choice])
            ink = strokes.ink[fraction[0], fraction[1], direction].reshape(side, side)
            near = strokes.near[fraction[0], fraction[1], direction].reshape(side, side)
            self._occupy(snake, where, ink, near)
            if snake.last is not None:  # the step before the previous one now keeps this snake off
                last_where, last_near = snake.last
                snake.old[last_where] |= last_near
            snake.last = (where, near)
            snake.points.append(ends[choice])
            snake.direction = direction
            return True
        return False

    def grow(self, snakes: list[_Snake], steps: int, markers: bool) -> bool:
        """Grow `snakes` in turn by `steps` steps each; with `markers`, reserve the final ends' discs."""
        for index in range(steps):
            last = index == steps - 1
            for snake in snakes:
                if not self.step(snake, marker_at_end=markers and last):
                    return False
                if markers and last:
                    self.reserve_marker(snake, snake.points[-1], check=False)
        return True


def _place_targets(settings: Settings, rng: np.random.Generator) -> _Canvas | None:
    canvas = _Canvas(settings, rng)
    low, high = 2 * settings.seed_distance, settings.size - 2 * settings.seed_distance
    first = rng.integers(low, high, size=2)
    angle = rng.integers(0, 360) * math.pi / 180
    second = np.rint(first + settings.seed_distance * np.array([math.sin(angle), math.cos(angle)])).astype(int)
    snakes = [canvas.new_snake(first, counted=True), canvas.new_snake(second, counted=True)]
    if not all(canvas.reserve_marker(snake, snake.points[0]) for snake in snakes):
        return None
    return canvas if canvas.grow(snakes, settings.contour_length, markers=True) else None


def _add_distractors(canvas: _Canvas) -> int:
    """Draw the distractors; returns how many were left out."""
    settings, rng = canvas.settings, canvas.rng
    left_out = 0
    for _ in range(settings.num_distractors):
        placed = False
        for _ in range(settings.max_distractor_retrial + 1):
            free_pixels = np.argwhere(~(canvas.border | (canvas.cover > 0))) - canvas.halo
            if not len(free_pixels):
                break
            snake = canvas.new_snake(free_pixels[rng.integers(len(free_pixels))], counted=False)
            if canvas.grow([snake], settings.distractor_length, markers=False):
                canvas.count(snake)
                placed = True
                break
            canvas.drop(snake)
        left_out += not placed
    return left_out


# ----------------------------------------------------------------------------------------------------------
# The image
# ----------------------------------------------------------------------------------------------------------


def render(settings: Settings, snakes: list[np.ndarray], markers: list[np.ndarray]) -> np.ndarray:
    """The uint8 image of the snakes' strokes (points in pixels; dashed: only the published paddles) and the
    markers."""
    size = settings.size
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1).reshape(-1, 2).astype(float)
    starts = np.concatenate([points[:-1] for points in snakes])
    ends = np.concatenate([points[1:] for points in snakes])
    if settings.dashed:  # the paddle in the middle of each step, `margin` from either end
        unit = (ends - starts) / np.linalg.norm(ends - starts, axis=1, keepdims=True)
        starts, ends = starts + settings.margin * unit, starts + (settings.margin + settings.paddle_length) * unit
    distance = np.sqrt(_segment_distance2(grid, starts, ends).min(0))
    contrast = settings.snake_contrast * settings.paddle_contrast
    image = np.minimum(1.0, contrast * np.clip((settings.stroke_extent - distance) / settings.edge, 0.0, 1.0))
    distance = np.sqrt(_disc_distance2(grid, np.array(markers)).min(0))
    image = np.maximum(image, np.clip((settings.marker_extent - distance) / settings.edge, 0.0, 1.0))
    return np.rint(255 * image).astype(np.uint8).reshape(size, size)


def draw(settings: Settings, rng: np.random.Generator) -> Sample:
    """One image and its label."""
    label = int(rng.integers(2))
    for _ in range(settings.max_pair_retrial):
        canvas = _place_targets(settings, rng)
        if canvas is not None:
            break
    else:
        raise RuntimeError(f"could not place two snakes of {settings.contour_length} steps in "
                           f"{settings.max_pair_retrial} tries: the settings leave too little room")
    left_out = _add_distractors(canvas)
    snakes = [np.array(snake.points) / EIGHTHS for snake in canvas.snakes]
    origin = int(rng.integers(2))  # which target snake carries the first marker
    markers = (snakes[origin][0], snakes[origin if label else 1 - origin][-1])
    image = render(settings, snakes, list(markers))
    return Sample(image, label, tuple(tuple(point) for point in markers), snakes, left_out)


def image_rng(seed: int, settings: Settings, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, settings.contour_length, index])
