"""The cold-start probe ``bench`` spawns: ``python -m har_demo.commands.cold_start T0 NAMES``.

Imports the app's model bank, loads the named models from ``$HAR_CHECKPOINT_DIR``, analyses one
synthetic photo and prints one JSON line of seconds (import / load / first analysis, measured
from ``T0``, the parent's ``time.time()`` just before spawning)."""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    t0 = float(argv[0])
    from ..testing import synthetic_photo
    from ..ui.analysis import analyse
    from ..ui.bank import ModelBank

    t_import = time.time()
    bank = ModelBank.load(argv[1].split(","))
    t_load = time.time()
    bad = {e.name: e.source for e in bank.unavailable()}
    res = analyse(bank, synthetic_photo())
    t_first = time.time()
    errs = {n: c.error for n, c in res.cards.items() if c.error}
    print(json.dumps({
        "import_s": t_import - t0, "load_s": t_load - t_import, "first_analysis_s": t_first - t_load,
        "total_s": t_first - t0, "unavailable": bad, "errors": errs,
        "load_s_per_model": {n: round(e.load_seconds, 3) for n, e in bank.entries.items()},
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
