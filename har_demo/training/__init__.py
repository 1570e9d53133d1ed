"""Training side (faces layer): ``python train.py`` -> ``training.cli.main``.

Modules: ``config`` (TrainConfig, ``--config`` overrides; per-model defaults come from the registry line), ``dataprep`` (samples,
the one saved split), ``data`` (decode-once image cache), ``loop`` (AdamW, warm-up + cosine,
early stopping, LP-FT, Accelerate), ``schedules``, ``seeding``, ``calibration`` (temperature
scaling, ECE), ``wise`` (WiSE-FT alpha on val), ``runner`` (seeds x models, checkpoints), ``card`` (the card it writes),
``results`` / ``ablation`` / ``plots`` (tables, JSON, PNGs), ``stats`` (mean +- std, bootstrap CI),
``study`` (the study's published numbers). Metrics come from ``har_demo.evaluate`` (shared with the CLI/UI).
"""
