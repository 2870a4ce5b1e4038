"""Where the game's objects are, read from the emulator's RAM (or, for Enduro, its screen), and
how much of a saliency map falls on each kind of object.

A saliency map says which pixels move a head; whether those pixels are the ball, a paddle or the
score needs to know where those are. Their positions are in the game's RAM. The addresses
and offsets here are the RAM tables published by OCAtari (Delfosse et al. 2024, "OCAtari:
Object-Centric Atari 2600 Reinforcement Learning Environments", ``ocatari/ram/<game>.py``, v2.2.1),
which extend Anand et al. 2019 (AtariARI). They are read here rather than through the package,
which pins NumPy below 2 and brings a dozen packages (pygame, keyboard, scikit-learn, ...) with
it. Each table is checked against the real screen by ``tests/test_objects.py``.

Boxes are in screen pixels (210 x 160), ``(x, y, w, h)`` with ``x`` the column. An observation's
newest frame is the maximum of the last two frames of its frame skip (``maxpool``), so its
objects are the union of both frames' boxes (:meth:`envs.atari.AtariEnv.pooled_ram`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Box:
    """One object on the 210 x 160 screen: its class, left column, top row, width, height."""

    cls: str
    x: int
    y: int
    w: int
    h: int


def _pong(ram: np.ndarray) -> list[Box]:
    """Pong (OCAtari ``pong.py``): the ball while in play, the two paddles (cut where the court's
    walls hide them), and the two scores at the top. The ball is drawn at OCAtari's row or the
    one above (87% and 12% of 1,868 frames measured here), so its box is 5 rows high."""
    found = [Box("score", 20, 1, 28, 20), Box("score", 100, 1, 28, 20)]
    if ram[54] != 0 and ram[49] > 49:
        found.append(Box("ball", int(ram[49]) - 49, int(ram[54]) - 15, 2, 5))
    for cls, x, y in (("enemy", 16, int(ram[50]) - 15), ("player", 140, int(ram[51]) - 13)):
        if y + 15 > 34:  # a paddle above the court's top edge is hidden by the wall
            top, bottom = max(y, 34), min(y + 15, 194)
            if bottom > top:
                found.append(Box(cls, x, top, 4, bottom - top))
    return found


BREAKOUT_ROWS = 6
BREAKOUT_COLUMNS = 18
_BREAKOUT_ORDER = [0, 4, 3, 2, 1, 5, 6, 7, 8, 11, 12, 16, 15, 14, 13, 17, 18, 19]


def breakout_bricks(ram: np.ndarray) -> np.ndarray:
    """(6, 18) bool: which bricks are left, top row first. The wall lies in RAM bytes 0-35 as the
    Atari's playfield registers hold it, one bit for every 4-pixel half of a brick; this reads
    one bit a brick, in OCAtari's order (``breakout.py``, ``_make_block_bitmap``)."""
    grid = np.zeros((BREAKOUT_ROWS, BREAKOUT_COLUMNS), bool)
    for k in range(BREAKOUT_ROWS):
        bits: list[int] = []
        for j in range(5, -1, -1):  # the bytes of row k are ram[6 * j + k]
            b = int(ram[6 * j + k])
            positions = (6,) if j == 5 else (0, 2, 4) if j == 0 else (0, 2, 4, 6)
            bits += [(b >> p) & 1 for p in positions]
        grid[BREAKOUT_ROWS - 1 - k] = np.array(bits)[_BREAKOUT_ORDER].astype(bool)
    return grid


def _breakout(ram: np.ndarray) -> list[Box]:
    """Breakout (OCAtari ``breakout.py``): the paddle, the ball while in play, every brick left,
    and the score and lives at the top. The ball below row 194 is not drawn (none of 27 boxes
    there held it, measured here), where OCAtari keeps it to row 196."""
    found = [Box("score", 36, 5, 108, 10), Box("paddle", int(ram[72]) - 47, 189, 16, 4)]
    if ram[101] != 0 and int(ram[101]) + 9 <= 194:
        found.append(Box("ball", int(ram[99]) - 49, int(ram[101]) + 9, 2, 4))
    for row, col in zip(*np.nonzero(breakout_bricks(ram)), strict=True):
        found.append(Box("bricks", 8 + 8 * int(col), 57 + 6 * int(row), 8, 6))
    return found


def space_invaders_aliens(ram: np.ndarray) -> np.ndarray:
    """(6, 6) bool: which aliens are alive, top row first. Each row is one RAM byte, the bottom
    row in byte 18 and the top one in byte 23, its lowest bit the leftmost alien (measured here
    against the screen; OCAtari's ``spaceinvaders.py`` reads the same bytes)."""
    return np.array([[int(ram[23 - r]) >> c & 1 for c in range(6)] for r in range(6)], bool)


def _space_invaders(ram: np.ndarray) -> list[Box]:
    """Space Invaders (OCAtari ``spaceinvaders.py``): the player's cannon (it blinks for a
    second at each life's start, when its box is empty on alternate frames), every alien left (a
    grid of 16 x 18-pixel cells whose corner RAM bytes 26 and 16 move), the three shields as far
    as they stand (RAM bytes 43-69, nine rows a shield, two screen rows each), the shots in flight
    (drawn on alternate frames: the aliens' on odd ones, the player's on even ones, so an
    observation's two pooled frames hold them all), and the two scores at the top. The mothership
    is left out: it never flew in the 8,000 frames of random play its rule was checked on."""
    found = [Box("score", 4, 10, 60, 10), Box("score", 84, 10, 60, 10),
             Box("player", int(ram[28]) - 1, 185, 7, 10)]  # fmt: skip
    x0, y0 = int(ram[26]) - 1, 31 + 2 * int(ram[16])
    for r, c in zip(*np.nonzero(space_invaders_aliens(ram)), strict=True):
        found.append(Box("alien", x0 + 16 * int(c), y0 + 18 * int(r), 8, 10))
    for i in range(3):
        rows = np.flatnonzero(ram[43 + 9 * i : 52 + 9 * i])
        if len(rows):
            top, bottom = 157 + 2 * int(rows[0]), 157 + 2 * int(rows[-1]) + 2
            found.append(Box("shield", 42 + 32 * i, top, 8, bottom - top))
    for x, y in ((ram[83], ram[81]), (ram[84], ram[82]), (ram[87], ram[85])):
        top = 2 * int(y) + 3
        if 20 < top < 195:
            found.append(Box("shot", int(x) - 2, top, 1, min(10, 195 - top)))
    return found


def _ms_pacman(ram: np.ndarray) -> list[Box]:
    """Ms. Pac-Man (OCAtari ``mspacman.py``): Ms. Pac-Man, the ghosts (RAM bytes 6-9 and 12-15;
    the first while byte 47 is set, the others as byte 19 counts them), the fruit while it is
    out, the four power pills left (bits of byte 117), every pill left (14 rows of three bytes
    from byte 59, one bit a pill, 8 pixels apart with a 4-pixel gap at the maze's middle) and
    the score. The ghosts flicker, each drawn on alternate frames, so an observation's two pooled
    frames show them all."""
    found = [Box("score", 55, 187, 47, 7), Box("player", int(ram[10]) - 13, int(ram[16]) + 1, 9, 10)]
    ghosts = ([0] if ram[47] else []) + [k for k in (1, 2, 3) if ram[47] and ram[19] >= k]
    found += [Box("ghost", int(ram[6 + k]) - 13, int(ram[12 + k]) + 1, 9, 10) for k in ghosts]
    if ram[11] and ram[17]:
        found.append(Box("fruit", int(ram[11]) - 13, int(ram[17]) + 1, 9, 10))
    for bit, (x, y) in zip((4, 8, 16, 32), ((148, 146), (148, 14), (8, 147), (8, 15)), strict=True):
        if ram[117] & bit:
            found.append(Box("power_pill", x, y, 4, 7))
    for row in range(14):
        edge, left, right = (int(b) for b in ram[59 + 3 * row : 62 + 3 * row])
        columns = [c for c, bit in ((17, 16), (0, 64)) if edge & bit]
        columns += [4 - (j >> 1) if j & 1 else 12 - (j >> 1) for j in range(8) if left >> j & 1]
        columns += [13 + (j >> 1) if j & 1 else 5 + (j >> 1) for j in range(8) if right >> j & 1]
        found += [Box("pill", 8 + 8 * c + 4 * (c > 8), 7 + 12 * row, 4, 2) for c in columns]
    return found


def _seaquest(ram: np.ndarray) -> list[Box]:
    """Seaquest (OCAtari ``seaquest.py``): the player's submarine (hidden while byte 105 counts
    its explosion), the enemies of each of the four lanes (a lane's formation byte says which of
    its three slots, 16 pixels apart, hold one; a lane holds sharks, which bob by byte 93, or
    submarines, as byte 89 + lane says), one diver or enemy shot a lane (a submarine lane fires,
    a shark lane carries a diver), the enemy submarine on the surface in later waves, the
    player's torpedo, the oxygen bar, and the score, lives and rescued divers (``hud``)."""
    found = [Box("oxygen", 49, 170, 63, 5), Box("hud", 59, 9, 47, 8), Box("hud", 58, 22, 47, 8),
             Box("hud", 58, 178, 48, 9)]  # fmt: skip
    if not 0 < ram[105] < 15:
        found.append(Box("player", int(ram[70]), int(ram[97]) + 33, 16, 11))
    for lane in range(4):  # bottom lane first
        submarines = 3 < int(ram[89 + lane]) % 8 < 7
        for slot in range(3):
            x = (int(ram[30 + lane]) + 16 * slot) % 256
            if int(ram[36 + lane]) >> (2 - slot) & 1 and x <= 165:
                if submarines:
                    found.append(Box("submarine", x, 141 - 24 * lane, 8, 11))
                else:
                    found.append(Box("shark", x, 141 - 24 * lane + int(ram[93]) - 4, 8, 7))
        x = int(ram[71 + lane])
        if 0 < x < 160:
            found.append(Box("shot", x + 3, 145 - 24 * lane, 6, 4) if submarines
                         else Box("diver", x, 141 - 24 * lane, 8, 11))  # fmt: skip
    if ram[60] >= 2 and ram[118] < 160:
        found.append(Box("submarine", int(ram[118]), 45, 8, 11))
    if 0 < ram[103] < 160:
        found.append(Box("shot", int(ram[103]), int(ram[97]) + 40, 8, 1))
    return found


ENDURO_FIELD = (51, 155)  # the rows between the horizon and the dashboard
ENDURO_NEAR = 120  # a car whose box reaches below this row is just ahead of the player's car


def _enduro(screen: np.ndarray) -> list[Box]:
    """Enduro, read from the screen: no RAM table places its cars (OCAtari's ``enduro.py`` fits
    their rows with a formula that misses them on the screen, measured here). On the field (rows
    51-154; the first 8 columns are the console's blank bar), whatever is not the ground's colour
    (the field's most common one, which changes with the time of day) is an object. The road's
    edges and the player's car are grey (R = G = B) in every light; the other cars, or at night
    their tail lights, never are. So: each 8-connected group of coloured pixels is a car, near
    (reaching below row 120, the road just ahead) or far; the player's car is the grey group
    below row 130 that holds runs of 4 or more grey pixels (an edge is 1-2 pixels a row; every
    row of the car's sprite has one), on the rows that hold them; the rest of the grey is the
    road's edges, one box per row and run; the dashboard is fixed."""
    from scipy import ndimage

    top, bottom = ENDURO_FIELD
    field = np.asarray(screen[top:bottom, 8:], np.int32)
    code = field[..., 0] << 16 | field[..., 1] << 8 | field[..., 2]
    colours, counts = np.unique(code, return_counts=True)
    other = code != colours[counts.argmax()]
    grey = (field[..., 0] == field[..., 1]) & (field[..., 1] == field[..., 2]) & other
    found = [Box("dashboard", 48, 161, 64, 30)]
    cars, _ = ndimage.label(other & ~grey, structure=np.ones((3, 3)))
    for rows, cols in ndimage.find_objects(cars):
        cls = "car_near" if rows.stop + top > ENDURO_NEAR else "car_far"
        w, h = cols.stop - cols.start, rows.stop - rows.start
        found.append(Box(cls, cols.start + 8, rows.start + top, w, h))
    low = grey.copy()
    low[: 130 - top] = False
    groups, _ = ndimage.label(low, structure=np.ones((3, 3)))
    runs = low[:, 3:] & low[:, 2:-1] & low[:, 1:-2] & low[:, :-3]
    player = np.isin(groups, np.unique(groups[:, 3:][runs])) & low & runs.any(1)[:, None]
    if player.any():
        rows, cols = np.nonzero(player)
        found.append(Box("player", int(cols.min()) + 8, int(rows.min()) + top,
                         int(cols.max() - cols.min()) + 1, int(rows.max() - rows.min()) + 1))  # fmt: skip
    steps = np.diff(np.pad(grey & ~player, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    (rows, starts), (_, stops) = np.nonzero(steps == 1), np.nonzero(steps == -1)  # row by row
    found += [Box("road", int(c) + 8, int(r) + top, int(e - c), 1)
              for r, c, e in zip(rows, starts, stops, strict=True)]  # fmt: skip
    return found


def _catch(state: np.ndarray) -> list[Box]:
    """Catch (Mnih et al. 2014): the ball and the paddle, one pixel high, from the game's own state
    (:meth:`envs.CatchEnv.pooled_ram`: ball row and column, paddle column and width), exact by
    construction. Its screen is its observation's grid (``size x size``)."""
    row, col, paddle, width = (int(v) for v in state[:4])
    return [Box("ball", col, row, 1, 1), Box("paddle", paddle, int(state[4]) - 1, width, 1)]


GAMES: dict[str, Callable[[np.ndarray], list[Box]]] = {"pong": _pong, "breakout": _breakout,
                                                       "space_invaders": _space_invaders,
                                                       "enduro": _enduro, "ms_pacman": _ms_pacman,
                                                       "seaquest": _seaquest,
                                                       "catch": _catch}  # fmt: skip
SCREEN_GAMES = frozenset({"enduro"})  # games whose objects are found on the screen, not in RAM
CLASSES = {"catch": ("ball", "paddle"),
           "enduro": ("player", "car_near", "car_far", "road", "dashboard"),
           "ms_pacman": ("player", "ghost", "fruit", "power_pill", "pill", "score"),
           "seaquest": ("player", "shark", "submarine", "diver", "shot", "oxygen", "hud"),
           "pong": ("ball", "player", "enemy", "score"),
           "breakout": ("ball", "paddle", "bricks", "score"),
           "space_invaders": ("player", "alien", "shield", "shot", "score")}  # fmt: skip


def check_game(game: str) -> None:
    """One line for a game whose objects cannot be read."""
    if game not in GAMES:
        raise ValueError(f"no object tables for {game!r}; games with objects: {', '.join(GAMES)}")


def check_classes(game: str, classes: Sequence[str] = ()) -> tuple[str, ...]:
    """The object classes to measure on ``game``: those given, in their order, or all of the
    game's; one line for a game without object tables or a class it does not have."""
    check_game(game)
    for c in classes:
        if c not in CLASSES[game]:
            raise ValueError(f"{game} has no object class {c!r}; its classes: {', '.join(CLASSES[game])}")
    return tuple(dict.fromkeys(classes)) or CLASSES[game]


def pooled_state(env: Any, game: str) -> list[np.ndarray]:
    """What ``game``'s objects are read from for the newest observation frame: the RAM of each
    frame it pooled, or for :data:`SCREEN_GAMES` their screens (the env must record them:
    :meth:`envs.atari.AtariEnv.record_screens`)."""
    return env.pooled_screens() if game in SCREEN_GAMES else env.pooled_ram()


def boxes(game: str, states: np.ndarray | Sequence[np.ndarray]) -> list[Box]:
    """The objects of one observation's newest frame: the union of the boxes of the frames it
    pooled (a (128,) RAM, or a 210 x 160 x 3 screen for :data:`SCREEN_GAMES`, or a sequence of
    them, as :func:`pooled_state` gives), clipped to the screen."""
    check_game(game)
    one = np.asarray(states).ndim == (3 if game in SCREEN_GAMES else 1)
    frames = [np.asarray(states)] if one else [np.asarray(r) for r in states]
    out = []
    for state in frames:
        for b in GAMES[game](state):
            x0, y0, x1, y1 = max(b.x, 0), max(b.y, 0), min(b.x + b.w, 160), min(b.y + b.h, 210)
            if x1 > x0 and y1 > y0:
                out.append(Box(b.cls, x0, y0, x1 - x0, y1 - y0))
    return out


def stacked_boxes(found: Sequence[Sequence[Box]], episodes: Sequence[int], stack: int) -> list[list[Box]]:
    """Per step, the boxes of every frame its observation stacks: step t's and those of the
    ``stack - 1`` steps before it in the same episode (the frames before an episode's start are
    blank). A map summed over the stack is then measured against where each object was in any of
    the frames it saw."""
    out = []
    for t in range(len(found)):
        steps = [u for u in range(max(0, t - stack + 1), t + 1) if episodes[u] == episodes[t]]
        out.append([b for u in steps for b in found[u]])
    return out


def class_masks(game: str, found: Sequence[Box], shape: tuple[int, int] = (84, 84),
                screen: tuple[int, int] | None = None,
                classes: Sequence[str] = ()) -> dict[str, np.ndarray]:  # fmt: skip
    """A (H, W) bool mask per object class (``classes``, or all the game's) on an observation's
    grid of ``shape``: every cell that a box of the class overlaps (the resize from ``screen``,
    Atari's 210 x 160 unless given, mixes a box's pixels into each cell it touches). Catch's screen
    is its observation's grid."""
    h, w = shape
    screen = screen or (shape if game == "catch" else (210, 160))
    sy, sx = h / screen[0], w / screen[1]
    masks = {cls: np.zeros(shape, bool) for cls in (classes or CLASSES[game])}
    for b in found:
        if b.cls not in masks:
            continue
        r0, r1 = int(np.floor(b.y * sy)), int(np.ceil((b.y + b.h) * sy))
        c0, c1 = int(np.floor(b.x * sx)), int(np.ceil((b.x + b.w) * sx))
        masks[b.cls][r0:r1, c0:c1] = True
    return masks


def mass_share(saliency: np.ndarray, mask: np.ndarray) -> float:
    """The share of a map's mass inside ``mask`` (relevance mass accuracy, Arras et al. 2022):
    0 for a map without mass."""
    s = np.abs(np.asarray(saliency, np.float64))
    total = s.sum()
    return float(s[mask].sum() / total) if total > 0 else 0.0


def enrichment(saliency: np.ndarray, mask: np.ndarray) -> float:
    """:func:`mass_share` over the mask's share of the grid: 1 for a map spread evenly, above 1
    where the map gathers on the object; NaN for an empty mask (the object is not on screen)."""
    area = float(np.mean(mask))
    return mass_share(saliency, mask) / area if area > 0 else float("nan")


def pointing_hit(saliency: np.ndarray, mask: np.ndarray) -> bool:
    """The pointing game (Zhang et al. 2018): whether the map's maximum lies in ``mask``. Ties
    count as a hit when any of the tied maxima does."""
    s = np.abs(np.asarray(saliency))
    return bool(mask[s == s.max()].any()) if s.max() > 0 else False


def object_report(game: str, heads: Sequence[str], maps: dict[str, np.ndarray],
                  found: Sequence[Sequence[Box]], classes: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """Where each head's maps fall among the game's objects (``classes``, or all of them), over an
    episode's frames.

    ``maps`` holds each head's (T, H, W) maps on the observation's grid and ``found`` each
    frame's boxes (:func:`boxes`). Per head and class: the mass share, the enrichment (over the
    frames where the class is on screen) and the pointing game's hit rate; per class the paired
    difference of the first head's share minus the second's; intervals by batch means, since
    consecutive frames are correlated (:func:`analysis.compare.batch_means_ci`)."""
    from analysis.compare import mean_ci_dict

    classes = tuple(classes) or CLASSES[game]
    shape = next(iter(maps.values())).shape[1:]
    masks = [class_masks(game, f, shape, classes=classes) for f in found]
    area = {c: np.array([m[c].mean() for m in masks]) for c in classes}
    shares: dict[str, dict[str, np.ndarray]] = {}
    per_head: dict[str, Any] = {}
    for h in heads:
        frames = maps[h]
        shares[h] = {c: np.array([mass_share(s, m[c]) for s, m in zip(frames, masks, strict=True)])
                     for c in classes}  # fmt: skip
        rows: dict[str, Any] = {}
        for c in classes:
            present = area[c] > 0
            enrich = np.array([enrichment(s, m[c]) for s, m, on in zip(frames, masks, present, strict=True)
                               if on])  # fmt: skip
            hits = np.array([pointing_hit(s, m[c]) for s, m in zip(frames, masks, strict=True)])
            rows[c] = {"mass_share": mean_ci_dict(shares[h][c], series=True),
                       "enrichment": mean_ci_dict(enrich, series=True) if present.sum() > 1 else None,
                       "pointing": mean_ci_dict(hits[present].astype(np.float64), series=True)
                       if present.sum() > 1 else None,
                       "frames_on_screen": int(present.sum())}  # fmt: skip
        anywhere = np.array([pointing_hit(s, np.any([m[c] for c in classes], 0))
                             for s, m in zip(frames, masks, strict=True)])  # fmt: skip
        per_head[h] = {"classes": rows, "pointing_any_object": mean_ci_dict(anywhere.astype(np.float64),
                                                                            series=True)}  # fmt: skip
    a, b = heads[0], heads[1]
    return {
        "game": game,
        "classes": list(classes),
        "area_share": {c: float(area[c].mean()) for c in classes},
        "heads": per_head,
        "differences": {f"{a} - {b}": {c: mean_ci_dict(shares[a][c] - shares[b][c], series=True)
                                       for c in classes}},  # fmt: skip
    }
