"""One radiograph to generate: its patient, site profile, spine and fractures (a picklable job)."""

from __future__ import annotations

from dataclasses import dataclass

from vcfnet.synth.sites import ImagingProfile


@dataclass(frozen=True)
class ImageTask:
    """One radiograph to render: who, where, which fractures."""

    site: str
    site_index: int
    index: int
    image: str
    patient_id: str
    patient_name: str
    age: int
    sex: str
    birth_date: str
    study_date: str
    fractures: dict[str, str]  # level -> class
    profile: ImagingProfile
    shape: tuple[int, int]
    seed: int
    annotate_normal: bool = False
    sign_strength: float = 1.0

    @property
    def uid_entropy(self) -> list[str]:
        return [str(self.seed), self.site, str(self.index)]
