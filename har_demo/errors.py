"""User-facing error types. Every error a person can cause is one of these, carrying a one-line
message; faces (CLI, UI) print the message, never a traceback."""


class HarError(Exception):
    """Base class: str(err) is a complete, human-readable message."""


class ImageLoadError(HarError):
    """An image could not be read (missing, empty, truncated, not an image, too large)."""


class DataError(HarError):
    """A dataset (folder, manifest, COCO files, zip) is malformed."""


class ModelUnavailable(HarError):
    """A model cannot be built here (e.g. pretrained weights not obtainable offline)."""


class CheckpointError(HarError):
    """A checkpoint directory is missing, incomplete, tampered or does not fit the model."""


class UnknownName(HarError):
    """An unknown model / method / class name was given."""


class ConfigError(HarError):
    """A bad option value or key: ``--config`` / ``--opt`` overrides, builder options, ``HAR_*`` settings."""
