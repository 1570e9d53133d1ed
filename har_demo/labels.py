"""Class names and CLIP prompt templates: the one place that defines them."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("sitting", "standing", "walking_running")

# Natural-language phrases for each class, used by zero-shot / text-initialised heads.
CLASS_PHRASES: dict[str, tuple[str, ...]] = {
    "sitting": ("a person sitting", "someone sitting down", "a seated person"),
    "standing": ("a person standing", "someone standing still", "a person standing upright"),
    "walking_running": ("a person walking", "a person running", "someone walking or running"),
}

PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a photo of {}",
    "a picture of {}.",
    "an image showing {}.",
    "a cropped photo of {}.",
    "a low resolution photo of {}.",
)


def class_index(name: str) -> int:
    """Index of a class name; a clear error listing the valid names otherwise."""
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(
            f"unknown class {name!r}; expected one of: {', '.join(CLASSES)}"
        ) from None


def prompts_for(cls: str) -> list[str]:
    """All prompt strings (templates x phrases) for one class."""
    class_index(cls)
    return [t.format(p) for p in CLASS_PHRASES[cls] for t in PROMPT_TEMPLATES]
