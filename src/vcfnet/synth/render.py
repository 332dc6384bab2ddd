"""Radiograph formation: attenuation map -> detector (scatter, blur, quantum noise) -> vendor processing.

Everything is vectorised numpy/scipy on local windows; smooth fields (soft tissue, gas, scatter,
low-pass processing) are computed on a coarse grid and upsampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from vcfnet.synth.anatomy import Vertebra
from vcfnet.synth.sites import ImagingProfile

COARSE = 8  # coarse grid step (px) for smooth fields


@dataclass(frozen=True)
class Appearance:
    """Global appearance constants of the second-generation generator (every site shares them;
    the site differences live in :class:`~vcfnet.synth.sites.ImagingProfile`)."""

    #: automatic windowing: the spine's 1-99.5 % range widened by these fractions below / above
    #: (real lateral lumbar films are displayed wide: the vertebral body sits near mid-grey)
    window_low: float = 0.9
    window_high: float = 1.0
    body_density: float = 0.28  # osteoporotic cancellous body, relative to the cortices' scale
    cortex: float = 0.35  # thin cortices: walls and endplates
    marrow_texture: float = 0.22  # contrast of the (coarse, vertical) trabecular pattern
    clutter: float = 0.08  # fat/muscle/bowel content inhomogeneity (log attenuation)
    bowel_gas: tuple[float, float] = (0.05, 0.12)  # strength range of the mottled gas bubbles
    #: log-attenuation deficit range of the gas-filled bowel loops: 0.8-3 cm of gas in place of
    #: soft tissue (mu ~0.2/cm at 70-80 kVp); colonic gas on a lateral film is centimetres deep
    gas_loops: tuple[float, float] = (0.16, 0.6)
    fine_sharpen: float = 0.7  # the vendor's finest (3 px) sharpening, relative to its unsharp mask
    noise_gain: float = 1.0  # quantum noise relative to the site's photons
    #: light spread of the detector's phosphor (sigma, mm) that the quantum noise goes through:
    #: CsI/Gd2O2S screens, MTF about 0.5 at 2 lp/mm; fixed in mm, so the noise is white on ~0.3 mm
    #: pixels and correlated (lower per pixel) on ~0.15 mm ones
    phosphor_spread_mm: float = 0.1
    #: dynamic range compression relative to the site's: enough to flatten the soft tissue, not
    #: so much that a vertebral body ends up darker than the abdomen in front of it
    range_compress: float = 0.6


APPEARANCE = Appearance()


def _ramp(x: np.ndarray) -> np.ndarray:
    """Soft step 0 -> 1 over about one unit of ``x`` (a cheap sigmoid)."""
    return np.clip(0.5 + x, 0.0, 1.0)


def _ridge(d: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-((d / width) ** 2))


def _shell(r2: np.ndarray, thickness: float, interior: float = 0.45) -> np.ndarray:
    """Projected path length through an elliptic shell (r2 = normalised radius squared)."""
    outer = np.sqrt(np.clip(1.0 - r2, 0.0, None))
    inner = np.sqrt(np.clip(1.0 - r2 / (1.0 - thickness) ** 2, 0.0, None)) * (1.0 - thickness)
    return outer - (1.0 - interior) * inner


def _window(shape: tuple[int, int], xs: np.ndarray, ys: np.ndarray, pad: int = 2):
    """Integer window (slices) bounding points (xs, ys), clipped to ``shape``; None if empty."""
    h, w = shape
    x0, x1 = max(0, int(np.floor(xs.min())) - pad), min(w, int(np.ceil(xs.max())) + pad)
    y0, y1 = max(0, int(np.floor(ys.min())) - pad), min(h, int(np.ceil(ys.max())) + pad)
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1)


def _grid(win) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[win[0], win[1]]
    return xs.astype(np.float32), ys.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma) -> np.ndarray:
    """Unit-variance Gaussian-filtered noise of ``shape``."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return f / (f.std() + 1e-6)


#: spread (sigma, px) below which the quantum noise is left white (see ``_grain``)
WHITE_BELOW_PX = 0.36


def _grain(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White unit-variance noise (H, W) spread by a Gaussian of ``sigma`` px, not renormalised.

    Spreading averages neighbouring quanta, so the per-pixel variance falls (to about
    1 / (4 pi sigma^2) for sigma above ~0.7 px), as the phosphor's light spread does on a detector.
    Below ``WHITE_BELOW_PX`` the noise stays white: a neighbour's weight would be at most 2 % (the
    default 1024x1280 film, ~0.3 px) and the filter would cost ~5 % of the render time.
    """
    noise = rng.standard_normal(shape, dtype=np.float32)
    if sigma < WHITE_BELOW_PX:
        return noise
    return ndimage.gaussian_filter(noise, sigma, truncate=2.5)


def trabecular_texture(
    rng: np.random.Generator, shape: tuple[int, int], scale: float
) -> np.ndarray:
    """Zero-mean band-passed texture with vertical trabeculae dominant (osteoporotic pattern)."""
    s = max(0.6, scale)
    fine = _smooth_noise(rng, shape, (1.5 * s, 0.6 * s))
    # osteoporosis thins and loses the horizontal trabeculae; the vertical ones left stand out
    # as coarse, longitudinal streaks
    coarse = _smooth_noise(rng, shape, (6.0 * s, 1.6 * s))
    return 0.55 * fine + 0.45 * coarse


def render_vertebra(
    bone: np.ndarray,
    texture: np.ndarray,
    vert: Vertebra,
    rng: np.random.Generator,
    density: float,
) -> None:
    """Add one vertebra's body and posterior elements to ``bone`` (H, W) in place."""
    spec = vert.spec
    _render_posterior(bone, vert, density)
    win = _window(
        bone.shape,
        *vert.to_image(np.array([-1.5, 1.4, 1.4, -1.5]), np.array([-1.5, -1.5, 1.5, 1.5])),
    )
    if win is None:
        return
    x, y = _grid(win)
    u, v = vert.to_local(x, y)
    eu, ev = 1.0 / vert.half_depth, 1.0 / vert.half_height  # one pixel in u / v units
    top, bot = vert.drawn_endplates(u)  # slightly concave endplates
    # a broken endplate shows a gap in the cortical line
    gap = 1.0 - 0.8 * _ridge(u - spec.step_u, 0.06) if spec.sign("endplate_step") > 0 else 1.0
    # walls: anterior buckle (angular kink), posterior bulge (convex, pathologic)
    u_ant, u_post = vert.walls(v)
    # the two halves of the body project a little apart (beam divergence, slight rotation), so the
    # outline is soft: ramps over ~3 px rather than one
    inside_v = _ramp((v - top) / (3 * ev)) * _ramp((bot - v) / (3 * ev))
    inside_u = _ramp((u - u_ant) / (3 * eu)) * _ramp((u_post - u) / (3 * eu))
    um = (u - (u_ant + u_post) / 2) / ((u_post - u_ant) / 2)
    vn = (v - (top + bot) / 2) / np.maximum((bot - top) / 2, 0.05)
    corners = _ramp((1.0 - um**10 - vn**10) / (10 * eu))  # rounded corners
    inside = inside_v * inside_u * corners
    chord = np.sqrt(np.clip(1.0 - 0.97 * um**2, 0.0, None))
    marrow = 1.0 + APPEARANCE.marrow_texture * texture[win]
    lytic, blastic = spec.sign("lytic"), spec.sign("blastic")
    destruction = spec.sign("cortical_destruction")
    if lytic > 0 or blastic > 0 or destruction > 0:
        blobs = _smooth_noise(rng, u.shape, max(2.0, vert.half_depth / 10))
        holes = np.clip((blobs - 0.2) * 1.5, 0.0, 1.0)
        marrow = marrow * (1.0 - lytic * holes) + blastic * 1.5 * np.clip(-blobs - 0.6, 0, 1)
        cortex_keep = 1.0 - destruction * np.clip((blobs + 0.3) * 2.0, 0.0, 1.0)
    else:
        cortex_keep = 1.0
    band = spec.sign("impaction_band")
    if band > 0:
        marrow = marrow + band * 3.0 * _ridge(v - top - 0.14, 0.08)
    scl = spec.sign("sclerosis")
    if scl > 0:
        marrow = marrow + scl * 0.35 * (_ridge(v - top - 0.08, 0.1) + _ridge(bot - v - 0.08, 0.1))
    body = APPEARANCE.body_density * density * chord * marrow * inside
    # cortices: walls seen tangentially, endplates with their projected ring (double contour)
    wc = 1.3 * (1 + 0.3 * scl)
    walls = (
        _ridge((u - u_ant) / eu, wc) * (0.55 + 0.5 * spec.sign("anterior_buckle") * 5)
        + _ridge((u - u_post) / eu, wc) * 0.55
        # the far side's posterior wall, projected a little behind (the contralateral shadow)
        + _ridge((u - u_post - 1.5 * vert.rim_offset) / eu, 1.5 * wc) * 0.2
    ) * inside_v
    ring = vert.rim_offset * np.sqrt(np.clip(1.0 - um**2, 0.0, None))
    we = 1.1 * (1 + 0.6 * scl)
    plates = (
        (
            _ridge((v - top) / ev, we) * gap
            + 0.5 * _ridge((v - top - 2 * ring) / ev, we) * gap
            + _ridge((v - bot) / ev, we)
            + 0.5 * _ridge((v - bot + 2 * ring) / ev, we)
        )
        * inside_u
        * (1 + 0.4 * scl)
    )
    cortex = (
        APPEARANCE.cortex * density * (walls + plates) * cortex_keep * (1.0 + 0.15 * texture[win])
    )
    # osteophytes at the anterior corners, curving towards the disc
    osteo = spec.sign("osteophyte")
    if osteo > 0:
        reach = np.clip((-1.0 - u) / osteo, 0.0, 1.0)
        tip = (u < -1.0) & (reach < 1.0)
        top_c, bot_c = top - 0.6 * osteo * reach, bot + 0.6 * osteo * reach
        thick = 0.14 * (1.0 - reach)
        spur = (
            _ramp((thick - np.abs(v - top_c)) / ev) + _ramp((thick - np.abs(v - bot_c)) / ev)
        ) * tip
        cortex = cortex + 0.4 * density * ndimage.gaussian_filter(spur, 1.0)
    bone[win] += body + cortex


def _render_posterior(bone: np.ndarray, vert: Vertebra, density: float) -> None:
    """Pedicle, articular pillar, facets and spinous process, in the body's frame, in place."""
    win = _window(
        bone.shape,
        *vert.to_image(np.array([0.85, 3.85, 3.85, 0.85]), np.array([-1.6, -1.6, 1.5, 1.5])),
    )
    if win is None:
        return
    u, v = vert.to_local(*_grid(win))
    ped = 1.0 - 0.85 * vert.spec.sign("pedicle_involvement")
    post = (
        ped * 0.9 * _shell(((u - 1.3) / 0.42) ** 2 + ((v + 0.35) / 0.36) ** 2, 0.3)
        + 0.8 * _shell(((u - 1.95) / 0.36) ** 2 + ((v + 0.05) / 0.95) ** 2, 0.25)
        + 0.6 * _shell(((u - 1.8) / 0.22) ** 2 + ((v + 1.2) / 0.35) ** 2, 0.35)
        + 0.6 * _shell(((u - 2.05) / 0.2) ** 2 + ((v - 1.1) / 0.35) ** 2, 0.35)
        + 0.8 * _shell(((u - 3.0) / 0.8) ** 2 + ((v - 0.3) / 0.36) ** 2, 0.3)
    )
    bone[win] += 0.35 * density * post


def render_ribs_and_pelvis(
    bone: np.ndarray,
    spine: list[Vertebra],
    rng: np.random.Generator,
    density: float,
) -> None:
    """Overlapping lower ribs (near T11-L1) and both iliac wings (near L4-S1), in place."""
    by_level = {v.level: v for v in spine}
    for _ in range(int(rng.integers(3, 7))):  # the lowest ribs, both sides, cross T11-L2
        anchor = by_level[str(rng.choice(["T11", "T12", "T12", "L1", "L1", "L2"]))]
        px = anchor.cx + anchor.half_depth * rng.uniform(0.2, 2.2)
        py = anchor.cy + anchor.half_height * rng.uniform(-1.5, 1.5)
        radius = anchor.half_depth * rng.uniform(6, 12)
        theta = np.deg2rad(rng.uniform(200, 235))  # arc descends anteriorly
        cx, cy = px - radius * np.cos(theta), py - radius * np.sin(theta)
        half_t = anchor.half_height * rng.uniform(0.2, 0.32)
        span = anchor.half_depth * rng.uniform(3, 5)
        win = _window(
            bone.shape, np.array([px - span, px + span]), np.array([py - span, py + span])
        )
        if win is None:
            continue
        x, y = _grid(win)
        r = np.hypot(x - cx, y - cy)
        fade = np.clip(1.0 - np.hypot(x - px, y - py) / span, 0.0, 1.0) ** 0.5
        bone[win] += 0.24 * density * _shell(((r - radius) / half_t) ** 2, 0.25, 0.25) * fade
    l5 = by_level["L5"]
    for k in range(2):  # left and right ilium, magnified differently
        ex = l5.cx + l5.half_depth * rng.uniform(1.0, 2.5) + k * rng.uniform(-8, 8)
        ey = l5.cy + l5.half_height * rng.uniform(1.0, 3.0) + k * rng.uniform(-10, 10)
        ax, ay = l5.half_depth * rng.uniform(3.2, 4.2), l5.half_height * rng.uniform(3.4, 4.8)
        win = _window(bone.shape, np.array([ex - ax, ex + ax]), np.array([ey - ay, ey + ay]))
        if win is None:
            continue
        x, y = _grid(win)
        r2 = ((x - ex) / ax) ** 2 + ((y - ey) / ay) ** 2
        plate = np.clip((1.0 - r2) * 6.0, 0.0, 1.0)
        rim = _ridge((np.sqrt(r2) - 0.985) * ax, 4.0)
        bone[win] += density * (0.2 * plate + 0.15 * rim)


def soft_tissue(
    rng: np.random.Generator, shape: tuple[int, int], spine: list[Vertebra]
) -> np.ndarray:
    """Log-attenuation of soft tissue and bowel gas (H, W), smooth, built on a coarse grid."""
    h, w = shape
    ch, cw = -(-h // COARSE), -(-w // COARSE)
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32) * COARSE
    spine_x = np.mean([v.cx for v in spine])
    depth = np.mean([v.half_depth for v in spine])
    x_post = spine_x + depth * rng.uniform(5.5, 7.0)  # skin of the back
    x_ant = spine_x - depth * rng.uniform(7.0, 12.0)  # abdominal wall
    mid, half = (x_post + x_ant) / 2, (x_post - x_ant) / 2
    waist = 1.0 + 0.08 * np.sin(yy / h * np.pi * rng.uniform(0.8, 1.5) + rng.uniform(0, 6))
    thick = np.sqrt(np.clip(1.0 - np.abs((xx - mid) / (half * waist)) ** 6, 0.0, None))
    tissue = rng.uniform(3.0, 4.0) * thick
    # bowel gas: dark rounded loops, mostly anterior to the spine
    gas = np.zeros_like(tissue)
    for _ in range(int(rng.integers(6, 18))):
        gx = spine_x - depth * rng.uniform(-0.5, 4.5)
        gy = rng.uniform(0.3, 1.0) * h
        ax, ay = depth * rng.uniform(0.2, 0.9), depth * rng.uniform(0.15, 0.6)
        r2 = ((xx - gx) / ax) ** 2 + ((yy - gy) / ay) ** 2
        gas -= rng.uniform(*APPEARANCE.gas_loops) * np.clip(1.2 - r2, 0.0, 1.0)
    gas = ndimage.gaussian_filter(gas, 1.0) + lung_bases(rng, xx, yy, spine)
    # bowel content and fat/muscle inhomogeneity: low-frequency clutter over everything
    clutter = APPEARANCE.clutter * _smooth_noise(rng, tissue.shape, 4.0) * thick
    field = _upsample(tissue + gas + clutter, shape)
    return field + bowel_mottle(rng, shape, spine_x, depth)


def lung_bases(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, spine: list[Vertebra]
) -> np.ndarray:
    """Log-attenuation deficit (<= 0) of the posterior lung bases on the grid (``xx``, ``yy``): the
    costophrenic recesses reach down behind T12-L1, the diaphragm rising anteriorly as a dome."""
    t11, l1 = spine[0], spine[2]
    depth = t11.half_depth
    y_recess = rng.uniform(t11.cy, l1.cy + l1.half_height)  # deepest point, behind the spine
    x_back = t11.cx + depth * rng.uniform(2.0, 4.0)
    rise = depth * rng.uniform(2.0, 4.0) * ((x_back - xx) / (6 * depth)) ** 2
    dome = y_recess - rise * (xx < x_back)
    behind = np.clip((xx - t11.cx - 0.5 * depth) / (2 * depth), 0.0, 1.0)
    air = np.clip((dome - yy) / (3 * depth), 0.0, 1.0) * behind
    return -rng.uniform(0.1, 0.4) * air


def bowel_mottle(
    rng: np.random.Generator, shape: tuple[int, int], spine_x: float, depth: float
) -> np.ndarray:
    """Stool and small gas bubbles (H, W): a mottled, mid-frequency log-attenuation pattern over
    the abdomen, overlying the vertebral bodies as the colon does on a lateral film."""
    h, w = shape
    step = 3
    ch, cw = -(-h // step), -(-w // step)
    xx = np.arange(cw, dtype=np.float32)[None, :] * step
    base = _smooth_noise(rng, (ch, cw), 2.0)
    loops = _smooth_noise(rng, (ch, cw), 6.0)  # where the bowel lies
    bubbles = np.clip(base - 0.6, 0.0, None) * np.clip(loops + 0.3, 0.0, 1.0)
    front = np.clip((spine_x + depth * 1.2 - xx) / (2 * depth), 0.0, 1.0)  # anterior to the canal
    field = -rng.uniform(*APPEARANCE.bowel_gas) * bubbles * front + 0.015 * base
    return _upsample(field.astype(np.float32), shape)


def _upsample(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float field to ``shape`` (H, W)."""
    img = Image.fromarray(np.ascontiguousarray(coarse, dtype=np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def _fine_detail(img: np.ndarray) -> np.ndarray:
    """``img`` minus its 3x3 box mean (H, W), zero on the border rows and columns.

    Two shifted-slice sums per axis: several times cheaper than ``ndimage.uniform_filter``.
    """
    rows = img.copy()
    rows[1:-1] += img[:-2]
    rows[1:-1] += img[2:]
    box = rows.copy()
    box[:, 1:-1] += rows[:, :-2]
    box[:, 1:-1] += rows[:, 2:]
    out = np.zeros_like(img)
    out[1:-1, 1:-1] = img[1:-1, 1:-1] - box[1:-1, 1:-1] / 9.0
    return out


def _lowpass(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian low-pass with a large sigma, computed on a coarse grid."""
    step = max(1, int(sigma_px // 3))
    small = img[::step, ::step]
    return _upsample(ndimage.gaussian_filter(small, sigma_px / step, mode="nearest"), img.shape)


def side_marker(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Mask (H, W) of a burned-in 'L' or 'R' letter in an upper corner."""
    h, w = shape
    mask = Image.new("L", (w, h), 0)
    size = max(12, h // 22)
    font = ImageFont.load_default(size=size)
    x = int(w * rng.uniform(0.04, 0.12)) if rng.random() < 0.5 else int(w * rng.uniform(0.82, 0.9))
    ImageDraw.Draw(mask).text(
        (x, int(h * rng.uniform(0.03, 0.08))), str(rng.choice(["L", "R"])), fill=255, font=font
    )
    return np.asarray(mask, dtype=np.float32) / 255.0


def noise_spread_px(profile: ImagingProfile, rows: int) -> float:
    """Sigma (px) that spreads the quantum noise on a radiograph of ``rows`` rows: the phosphor's
    light spread (fixed in mm, so it grows with rows) and the site's own grain."""
    spacing = profile.field_height_mm / rows
    grain = profile.noise_grain_px * rows / 1280.0
    return float(np.hypot(grain, APPEARANCE.phosphor_spread_mm / spacing))


def detector_image(
    mu: np.ndarray,
    profile: ImagingProfile,
    rng: np.random.Generator,
    scale: float,
    roi: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """Display values in [0, 1] (bone bright) from log-attenuation ``mu`` (H, W) through the site's chain.

    ``scale`` = rows / 1280 (blur and processing kernels scale with it); ``roi`` = the region the
    automatic exposure/windowing looks at (the spine).
    """
    h, w = mu.shape
    primary = np.exp(-mu)
    ys = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    primary *= 1.0 - 0.12 * ys  # heel effect: less output on the anode side (top)
    if profile.grid_lines > 0:
        xs = np.arange(w, dtype=np.float32)[None, :]
        primary *= 1.0 - profile.grid_lines * (0.5 + 0.5 * np.cos(2 * np.pi * xs / 2.7))
    # scatter: a broad halo of the primary (scatter-to-primary ratio), mostly low frequency
    signal = primary + profile.scatter * _lowpass(primary, 40 * scale)
    # detector MTF (screen/scintillator light spread, focal spot) on the signal
    signal = ndimage.gaussian_filter(signal, profile.blur_px * scale, truncate=2.5)
    # quantum noise: sampled per pixel after the blur (aliased noise power), spread only by the
    # phosphor's light spread, which is fixed in mm: white at ~0.3 mm pixels, correlated (and
    # lower per pixel) at ~0.15 mm
    noise = _grain(rng, (h, w), noise_spread_px(profile, h))
    # quanta per pixel grow with the pixel's area: ``photons`` is per pixel at 1280 rows
    quanta = np.clip(signal, 1e-6, None) * scale**2 / profile.photons
    signal = signal + APPEARANCE.noise_gain * np.sqrt(quanta) * noise
    log = -np.log(np.clip(signal, 1e-5, None))
    # vendor processing: dynamic range compression + unsharp mask
    low = _lowpass(log, 60 * scale)
    mid = _upsample(ndimage.gaussian_filter(log[::2, ::2], 2.0 * scale, truncate=2.5), log.shape)
    proc = (
        log
        - APPEARANCE.range_compress * profile.range_compress * (low - float(np.median(low)))
        + profile.edge_enhance * (log - mid)
        + APPEARANCE.fine_sharpen * profile.edge_enhance * _fine_detail(log)
    )
    sample = proc[roi] if roi is not None else proc
    lo, hi = np.percentile(sample[::3, ::3], [1.0, 99.5])
    pad_lo, pad_hi = APPEARANCE.window_low, APPEARANCE.window_high
    lo, hi = lo - pad_lo * (hi - lo), hi + pad_hi * (hi - lo)
    out = np.clip((proc - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    curve = np.linspace(0.0, 1.0, 1025)
    tone = 1.0 / (1.0 + np.exp(-profile.contrast * 4.0 * (curve - 0.5)))
    tone = ((tone - tone[0]) / (tone[-1] - tone[0])) ** profile.gamma
    out = tone.astype(np.float32)[(out * 1024).astype(np.int32)]
    if profile.collimation > 0:
        c = profile.collimation
        yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
        open_x = _ramp((xx - c) * w / 3) * _ramp((1 - c - xx) * w / 3)
        open_y = _ramp((yy - c * 0.5) * h / 3) * _ramp((1 - c * 0.5 - yy) * h / 3)
        shutter = open_x * open_y
        out = out * shutter + (0.93 + 0.02 * noise) * (1 - shutter)
    if profile.side_marker:
        out = np.maximum(out, side_marker((h, w), rng))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def render_radiograph(
    rng: np.random.Generator,
    spine: list[Vertebra],
    profile: ImagingProfile,
    shape: tuple[int, int],
    age: float,
    sex: str,
) -> np.ndarray:
    """Display image (H, W) float32 in [0, 1], bone bright, of ``spine`` imaged with ``profile``."""
    scale = shape[0] / 1280.0
    bone = np.zeros(shape, dtype=np.float32)
    texture = np.zeros(shape, dtype=np.float32)
    hd = max(v.half_depth for v in spine)
    xs, ys = np.array([v.cx for v in spine]), np.array([v.cy for v in spine])
    tex_win = _window(
        shape,
        np.array([xs.min() - 1.6 * hd, xs.max() + 1.6 * hd]),
        np.array([ys.min() - 2 * hd, ys.max() + 2 * hd]),
    )
    if tex_win is not None:
        h_t, w_t = tex_win[0].stop - tex_win[0].start, tex_win[1].stop - tex_win[1].start
        texture[tex_win] = trabecular_texture(rng, (h_t, w_t), scale * 1.2)
    osteoporosis = np.clip((age - 50) / 40, 0, 1) * (1.0 if sex == "F" else 0.6)
    density = (
        0.48 * profile.bone_contrast * float(rng.uniform(0.85, 1.1)) * (1.0 - 0.35 * osteoporosis)
    )
    for vert in spine:
        render_vertebra(bone, texture, vert, rng, density * float(rng.uniform(0.92, 1.08)))
    render_ribs_and_pelvis(bone, spine, rng, density)
    mu = soft_tissue(rng, shape, spine) + bone
    xs = [v.cx for v in spine]
    hd = spine[0].half_depth
    roi = _window(
        shape, np.array([min(xs) - 2 * hd, max(xs) + 2 * hd]), np.array([spine[0].cy, spine[-2].cy])
    )
    return detector_image(mu, profile, rng, scale, roi)
