"""Data layer: robust image I/O, datasets (folder, manifest, COCO), group-aware splits, transforms.
Imports no other har_demo layer except labels/errors."""
