"""Sites of a synthetic cohort: imaging profile, demographics and class mix (preset ``paper`` = Table 1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from vcfnet.errors import ConfigError
from vcfnet.labels import CLASS_NAMES


@dataclass(frozen=True)
class ImagingProfile:
    """How one hospital's equipment and processing turn attenuation into a stored DICOM image."""

    modality: str = "DX"  # DX or CR (decides the SOP class)
    field_height_mm: float = 400.0  # detector field height; pixel spacing = field / rows
    magnification: float = 1.10  # ImagerPixelSpacing / PixelSpacing
    blur_px: float = 0.8  # detector MTF + focal spot blur (sigma, pixels at 1280 rows)
    noise_grain_px: float = 0.0  # correlation length of the quantum noise (sigma, px at 1280 rows)
    photons: float = 360000.0  # quanta per pixel (at 1280 rows) behind no attenuation
    scatter: float = 0.25  # scatter-to-primary ratio
    grid_lines: float = 0.0  # amplitude of anti-scatter grid lines (0 = none)
    edge_enhance: float = 0.6  # unsharp-mask gain of the vendor processing
    range_compress: float = 0.4  # dynamic range compression of the vendor processing
    gamma: float = 1.0  # tone curve exponent
    contrast: float = 1.0  # tone curve slope (sigmoid gain)
    bone_contrast: float = 1.0  # relative bone attenuation (kVp)
    collimation: float = 0.0  # fraction of each side hidden by collimator blades (0 = none)
    side_marker: bool = False  # burned-in L/R marker
    photometric: str = "MONOCHROME2"  # or MONOCHROME1 (stored inverted)
    bits_stored: int = 12
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    transfer_syntax: str = "explicit"  # explicit | rle | jpeg2000
    institution: str = "Site 1 Hospital"
    manufacturer: str = "SynthRay"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SiteSpec:
    """One site of a preset: name, class counts (vertebrae), patients, demographics, imaging."""

    name: str
    counts: tuple[int, int, int]  # vertebrae per class, in CLASS_NAMES order
    patients: int
    age_mean: float = 72.5
    age_sd: float = 13.5
    female_fraction: float = 0.67
    split: str = "8:2"  # how `vcfnet prepare` should split it ("none" for validation-only sites)
    profile: ImagingProfile = field(default_factory=ImagingProfile)

    @property
    def n_vertebrae(self) -> int:
        return int(sum(self.counts))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["counts"] = dict(zip(CLASS_NAMES, self.counts, strict=True))
        return d


SITE1_PROFILE = ImagingProfile(
    modality="DX",
    field_height_mm=400.0,
    blur_px=0.8,
    photons=540000.0,
    scatter=0.2,
    edge_enhance=0.7,
    range_compress=0.75,
    gamma=1.0,
    contrast=1.0,
    collimation=0.0,
    side_marker=True,
    photometric="MONOCHROME2",
    bits_stored=12,
    transfer_syntax="explicit",
    institution="Synthetic Site 1 University Hospital",
    manufacturer="SynthRay",
)

#: The paper's Table 1 (development site split 8:2 later by `vcfnet prepare`).
PAPER_SITES: tuple[SiteSpec, ...] = (
    SiteSpec("SITE1", (1003, 861, 167), 1460, 73.2, 13.4, 0.69, "8:2", SITE1_PROFILE),
    SiteSpec(
        "GZFPH",
        (62, 40, 9),
        97,
        71.9,
        12.3,
        0.67,
        "none",
        ImagingProfile(
            modality="CR",
            field_height_mm=430.0,
            magnification=1.15,
            blur_px=1.2,
            photons=216000.0,
            scatter=0.35,
            grid_lines=0.04,
            edge_enhance=0.3,
            range_compress=0.85,
            gamma=1.15,
            contrast=0.85,
            bone_contrast=0.9,
            collimation=0.04,
            side_marker=True,
            photometric="MONOCHROME1",
            bits_stored=10,
            transfer_syntax="rle",
            institution="Guangzhou First People's Hospital (synthetic)",
            manufacturer="PlateCo",
        ),
    ),
    SiteSpec(
        "WHTH",
        (113, 95, 9),
        147,
        71.4,
        15.3,
        0.56,
        "none",
        ImagingProfile(
            modality="DX",
            field_height_mm=360.0,
            magnification=1.08,
            blur_px=1.4,
            photons=144000.0,
            scatter=0.6,
            grid_lines=0.0,
            edge_enhance=0.8,
            range_compress=0.6,
            gamma=1.1,
            contrast=1.1,
            bone_contrast=1.0,
            collimation=0.08,
            side_marker=False,
            photometric="MONOCHROME2",
            bits_stored=14,
            rescale_slope=0.5,
            rescale_intercept=-1024.0,
            transfer_syntax="jpeg2000",
            institution="Wuhan Third Hospital (synthetic)",
            manufacturer="FlatPanel Inc",
        ),
    ),
    SiteSpec(
        "HB672H",
        (94, 57, 25),
        143,
        72.0,
        13.9,
        0.58,
        "none",
        ImagingProfile(
            modality="CR",
            field_height_mm=420.0,
            magnification=1.12,
            blur_px=1.3,
            photons=162000.0,
            scatter=0.3,
            grid_lines=0.06,
            edge_enhance=0.2,
            range_compress=0.55,
            gamma=1.2,
            contrast=0.9,
            bone_contrast=0.85,
            collimation=0.02,
            side_marker=True,
            photometric="MONOCHROME1",
            bits_stored=12,
            rescale_slope=1.0,
            rescale_intercept=0.0,
            transfer_syntax="explicit",
            institution="Hubei 672 Orthopaedic Hospital (synthetic)",
            manufacturer="PlateCo",
        ),
    ),
    SiteSpec("PROSPECTIVE", (38, 31, 5), 57, 73.8, 15.9, 0.77, "none", SITE1_PROFILE),
)

PRESETS: dict[str, tuple[SiteSpec, ...]] = {"paper": PAPER_SITES}


def scale_site(site: SiteSpec, scale: float) -> SiteSpec:
    """``site`` with counts and patients multiplied by ``scale`` (>= 1 per class the site has)."""
    counts = tuple(max(1, round(c * scale)) if c > 0 else 0 for c in site.counts)
    n_classes = sum(1 for c in counts if c > 0)
    patients = min(sum(counts), max(n_classes, round(site.patients * scale)))
    return replace(site, counts=counts, patients=patients)  # type: ignore[arg-type]


def preset_sites(preset: str, scale: float = 1.0) -> tuple[SiteSpec, ...]:
    """The sites of ``preset`` scaled by ``scale``; ConfigError for unknown presets or scales <= 0."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if not scale > 0:
        raise ConfigError(f"--scale must be > 0 (got {scale})")
    return tuple(scale_site(s, scale) for s in PRESETS[preset])
