"""Training side (faces layer): ``python train.py`` -> ``training.cli.main``.

Modules: ``config`` (TrainConfig, per-model defaults, ``--config`` overrides), ``dataprep`` (samples,
the one saved split), ``data`` (decode-once image cache), ``loop`` (AdamW, warm-up + cosine,
early stopping, LP-FT, Accelerate), ``schedules``, ``seeding``, ``calibration`` (temperature
scaling, ECE), ``wise`` (WiSE-FT alpha on val), ``runner`` (seeds x models, checkpoints + cards),
``results`` / ``ablation`` / ``plots`` (tables, JSON, PNGs), ``stats`` (mean +- std, bootstrap CI),
``study`` (the study's published numbers), ``evaluation`` (metrics shared with the CLI/UI).
"""
