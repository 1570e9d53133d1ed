"""Command code of the faces (``python -m har_demo ...``, wired by ``har_demo.cli``): argument
parsing and printing around library calls. ``explain`` (explain / explain-eval), ``bench`` (the
speed benchmark: ``bench_sections``, ``bench_startup``, ``timing``, ``cold_start``). Library
layers (data, person, models, explain) hold no argparse."""
