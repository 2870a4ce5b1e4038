"""The head report's explorer: the first steps of the playback, frame by frame, in the page itself.

A scrubber and play/pause over the recorded steps; the game with its objects' boxes (a toggle) beside
each head's map; the step's head outputs (the value, the chosen action's advantage); a switch
between the report's methods; and per head the timeline of its map's mass on each object class,
which jumps to a frame when clicked. Everything it shows is embedded in ``report.html`` (images as
base64 PNGs, the rest as JSON, a few lines of script): the page opens from disk with nothing fetched.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import cv2
import numpy as np

from analysis.objects import SCREEN_GAMES, class_masks, mass_share

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")


def png(image: np.ndarray) -> str:
    """An RGB (H, W, 3) or grey (H, W) uint8 image as a PNG data URI."""
    pixels = image[..., ::-1] if image.ndim == 3 else image  # OpenCV writes BGR
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image.shape} as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode()


def levels(maps: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """(T, H, W) maps as uint8 levels on one scale for all of them, so that one step's map compares
    with the next one's: the square root of each value over the maps' ``percentile`` (the root
    shows the faint part of a speckled Jacobian map without hiding its peaks)."""
    scale = float(np.percentile(maps, percentile)) or float(maps.max()) or 1.0
    return (np.sqrt(np.clip(maps / scale, 0, 1)) * 255).round().astype(np.uint8)


def colour_table() -> np.ndarray:
    """The (256, 3) uint8 colours of the levels: matplotlib's inferno."""
    import matplotlib

    return (matplotlib.colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def head_output(outputs: dict[str, np.ndarray], head: str, action: int) -> float:
    """A head's output at a step: a scalar head's value, a vector head's entry for the action."""
    value = np.asarray(outputs[head]).reshape(-1)
    return float(value[action] if value.size > 1 else value[0])


def explorer_data(collected: Any, action_names: list[str] | None = None) -> dict[str, Any]:
    """What the explorer shows of ``collected`` (an :class:`analysis.report.Collected`): its first
    ``len(collected.screens)`` steps, every method's maps of both heads, the head outputs, the
    objects' boxes on the screen and, per method and head, each object class's share of the map."""
    steps = len(collected.screens)
    heads = list(collected.heads)
    maps = {m: {h: (per[h].sum(1) if per[h].ndim == 4 else per[h])[:steps] for h in heads}
            for m, per in collected.maps.items()}  # fmt: skip
    names = action_names or [str(a) for a in range(max(collected.actions, default=0) + 1)]
    data: dict[str, Any] = {
        "steps": steps,
        "screen": list(collected.frame_shape),
        "heads": heads,
        "methods": list(maps),
        "frames": [png(s) for s in collected.screens],
        # the maps as base64 uint8 levels, coloured by the page (a third of an RGB image's bytes)
        "maps": {m: {h: [base64.b64encode(x.tobytes()).decode() for x in levels(per[h])] for h in heads}
                 for m, per in maps.items()},  # fmt: skip
        "map_shape": list(maps[next(iter(maps))][heads[0]].shape[1:]),
        "colours": colour_table().reshape(-1).tolist(),
        "outputs": [{h: head_output(o, h, a) for h in heads} for o, a in
                    zip(collected.outputs, collected.actions, strict=True)],  # fmt: skip
        "actions": [names[a] if a < len(names) else str(a) for a in collected.actions],
        "per_action": [np.asarray(collected.outputs[0][h]).size > 1 for h in heads] if steps else [],
        "boxes": [[[b.cls, b.x, b.y, b.w, b.h] for b in found] for found in collected.on_screen],
        "classes": [],
        "timeline": {},
        "objects_from": "screen" if collected.game in SCREEN_GAMES else "RAM",
    }
    if collected.objects:
        shape = maps[data["methods"][0]][heads[0]].shape[1:]
        masks = [class_masks(collected.game, found, shape, classes=collected.classes)
                 for found in collected.objects[:steps]]  # fmt: skip
        data["classes"] = list(masks[0])
        data["timeline"] = {
            m: {h: {c: [round(mass_share(x, mask[c]), 4) for x, mask in zip(per[h], masks, strict=True)]
                    for c in data["classes"]} for h in heads}
            for m, per in maps.items()
        }  # fmt: skip
    return data


STYLE = """
#explorer .controls { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; margin: 0.5em 0; }
#explorer .panels { display: flex; gap: 12px; flex-wrap: wrap; }
#explorer figure { margin: 0; } #explorer figcaption { text-align: center; font-size: 0.9em; }
#explorer .stack { position: relative; }
#explorer .panels img, #explorer .panels canvas { image-rendering: pixelated; display: block; }
#explorer svg.overlay { position: absolute; left: 0; top: 0; }
#explorer svg.timeline { width: 100%; height: 110px; border: 1px solid #ccc; cursor: pointer; }
#explorer .legend span { margin-right: 1em; font-size: 0.85em; }
"""

SCRIPT = """
(() => {
  const D = JSON.parse(document.getElementById('explorer-data').textContent);
  const $ = (id) => document.getElementById(id);
  const svg = (tag, attrs) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  let frame = 0, method = D.methods[0], timer = null;
  const [H, W] = D.map_shape;
  function paint(canvas, encoded) {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    const ctx = canvas.getContext('2d');
    const image = ctx.createImageData(W, H);
    bytes.forEach((v, i) => {
      image.data.set([D.colours[3 * v], D.colours[3 * v + 1], D.colours[3 * v + 2], 255], 4 * i);
    });
    ctx.putImageData(image, 0, 0);
  }
  const colour = (c) => D.palette[D.classes.indexOf(c) % D.palette.length];
  function drawTimelines() {
    D.heads.forEach((h, j) => {
      const box = $('timeline-' + j);
      box.replaceChildren();
      const lines = (D.timeline[method] || {})[h] || {};
      const top = Math.max(1e-6, ...Object.values(lines).flat());
      for (const [c, values] of Object.entries(lines)) {
        const points = values.map((v, t) => `${t},${1 - v / top}`).join(' ');
        box.append(svg('polyline', {points, fill: 'none', stroke: colour(c), 'stroke-width': 2,
                                    'vector-effect': 'non-scaling-stroke', 'data-class': c}));
      }
      box.append(svg('line', {id: 'cursor-' + j, y1: 0, y2: 1, stroke: '#000',
                              'vector-effect': 'non-scaling-stroke'}));
    });
  }
  function show(t) {
    frame = Math.max(0, Math.min(D.steps - 1, t));
    $('frame').value = frame;
    $('frame-label').textContent = `step ${frame + 1} of ${D.steps}`;
    $('screen').src = D.frames[frame];
    D.heads.forEach((h, j) => {
      paint($('map-' + j), D.maps[method][h][frame]);
      const cursor = $('cursor-' + j);
      if (cursor) { cursor.setAttribute('x1', frame); cursor.setAttribute('x2', frame); }
    });
    const overlay = $('overlay');
    overlay.replaceChildren(...(D.boxes[frame] || []).map(([c, x, y, w, h]) =>
      svg('rect', {x, y, width: w, height: h, fill: 'none', stroke: colour(c), 'stroke-width': 1,
                   'data-class': c})));
    const out = D.outputs[frame];
    $('readout').textContent = `action ${D.actions[frame]}; ` + D.heads.map((h, j) =>
      `${h}${D.per_action[j] ? ` of ${D.actions[frame]}` : ''} ${out[h].toFixed(3)}`).join('; ');
  }
  $('frame').addEventListener('input', () => show(Number($('frame').value)));
  $('method').addEventListener('change', () => {
    method = $('method').value;
    drawTimelines();
    show(frame);
  });
  $('boxes').addEventListener('change', () => {
    $('overlay').style.display = $('boxes').checked ? '' : 'none';
  });
  $('play').addEventListener('click', () => {
    if (timer) { clearInterval(timer); timer = null; $('play').textContent = 'play'; return; }
    timer = setInterval(() => show((frame + 1) % D.steps), 1000 / 15);
    $('play').textContent = 'pause';
  });
  D.heads.forEach((h, j) => $('timeline-' + j).addEventListener('click', (e) => {
    const r = e.currentTarget.getBoundingClientRect();
    show(Math.round((e.clientX - r.left) / r.width * (D.steps - 1)));
  }));
  drawTimelines();
  show(0);
})();
"""


def explorer_html(data: dict[str, Any]) -> str:
    """The explorer's section of ``report.html``: its markup, its data and its script."""
    heads, steps = data["heads"], data["steps"]
    height, width = data["screen"]
    size = f"width: 320px; height: {round(320 * height / width)}px"  # the screen's shape, 320 wide
    options = "".join(f'<option value="{html.escape(m)}">{html.escape(m)}</option>'
                      for m in data["methods"])  # fmt: skip
    rows, cols = data["map_shape"]
    panels = "".join(f'<figure><canvas id="map-{j}" width="{cols}" height="{rows}" style="{size}" '
                     f'aria-label="{html.escape(h)} map"></canvas><figcaption>{html.escape(h)}</figcaption>'
                     f"</figure>" for j, h in enumerate(heads))  # fmt: skip
    source = data["objects_from"]
    boxes_note = f" Boxes: the game's objects, read from its {source}." if data["classes"] else ""
    legend = "".join(f'<span style="color:{PALETTE[i % len(PALETTE)]}">&#9632; {html.escape(c)}</span>'
                     for i, c in enumerate(data["classes"]))  # fmt: skip
    timelines = "".join(
        f'<p>{html.escape(h)}: share of the map on each object class, step by step (click to go '
        f'there)</p><svg class="timeline" id="timeline-{j}" viewBox="0 0 {max(1, steps - 1)} 1" '
        f'preserveAspectRatio="none"></svg>' for j, h in enumerate(heads)
    ) if data["classes"] else ""  # fmt: skip
    payload = json.dumps({**data, "palette": PALETTE}).replace("</", "<\\/")
    return f"""<h2>Explore the playback</h2>
<p class="note">The first {steps} steps of the playback. Drag the slider or press play. The maps
share one colour scale per method and head over these steps (the square root of the map over its
99.5th percentile).{boxes_note}</p>
<style>{STYLE}</style>
<div id="explorer">
<div class="controls"><button id="play" type="button">play</button>
<input id="frame" type="range" min="0" max="{steps - 1}" value="0" aria-label="step">
<span id="frame-label"></span>
<label>method <select id="method">{options}</select></label>
<label{"" if data["classes"] else " hidden"}><input id="boxes" type="checkbox" checked> object boxes
</label></div>
<div class="panels"><figure><div class="stack" style="{size}"><img id="screen" alt="the game" style="{size}">
<svg class="overlay" id="overlay" viewBox="0 0 {width} {height}" preserveAspectRatio="none"
style="{size}"></svg></div>
<figcaption>game</figcaption></figure>{panels}</div>
<p id="readout"></p>
<div class="legend">{legend}</div>
{timelines}
</div>
<script type="application/json" id="explorer-data">{payload}</script>
<script>{SCRIPT}</script>
"""
