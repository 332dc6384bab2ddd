"""Exceptions whose message tells the user what to do. The CLI prints them as one line."""


class VcfnetError(Exception):
    """Base class for errors caused by user input; the CLI exits with status 2."""


class InputError(VcfnetError, ValueError):
    """An input file or argument is invalid (corrupt image, bad box, unknown class...)."""


class ConfigError(VcfnetError, ValueError):
    """A configuration file or option is invalid."""


class CheckpointError(VcfnetError):
    """A model file is missing, corrupt or not a vcfnet checkpoint."""


class WeightsUnavailableError(VcfnetError):
    """Pretrained weights could not be found offline."""
