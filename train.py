"""Train registry models over seeds on one saved split (see ``python train.py --help``).

Runs plainly (``python train.py ...``) or under Hugging Face Accelerate
(``accelerate launch train.py ...``); the logic lives in ``har_demo.training``."""

from har_demo import settings

settings.check_or_exit()  # a bad HAR_* variable: one line, before the library reads one at import

from har_demo.training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
