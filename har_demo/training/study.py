"""The study's published numbers, shown beside ours for context only (different data: the study
used 285 MS-COCO val2017 images, 95 per class; our tables are on whatever ``--data`` was given).

Only numbers stated in the paper's abstract are listed; extend ``STUDY_RESULTS`` from the paper's
tables (keep the ``where`` note) rather than guessing.
"""

from __future__ import annotations

STUDY_REFERENCE = (
    "Mahanta & Bhatia, 'Leveraging Vision-Language Pre-training for Human Activity Recognition in Still Images', "
    "arXiv:2506.13458 (2025)"
)
STUDY_DATA = "285 MS-COCO val2017 images (95 per class), single split"

# registry model it corresponds to -> (study's name for it, test accuracy, where the number is stated)
STUDY_RESULTS: dict[str, tuple[str, float, str]] = {
    "cnn_base": ("CNN trained from scratch", 0.41, "abstract"),
    "clip_ft": ("fine-tuned CLIP", 0.76, "abstract"),
}
