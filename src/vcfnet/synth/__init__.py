"""Synthetic multicenter cohort of lateral lumbar radiographs with acute, chronic and pathologic VCFs."""

from vcfnet.synth.cohort import CohortResult, SynthConfig, generate_cohort

__all__ = ["CohortResult", "SynthConfig", "generate_cohort"]
