"""Vertebra localisation: find each vertebral body, name its level, place its six points."""
