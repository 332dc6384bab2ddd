"""The study: the paper's published numbers and the end-to-end demo on a synthetic cohort."""
