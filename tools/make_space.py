"""Make a Hugging Face Space snapshot of this repository: CPU torch, binary files through Git LFS.

    python tools/make_space.py OUT                      # write the snapshot folder OUT (nothing is pushed)
    python tools/make_space.py OUT --push URL           # ... then commit it with Git LFS and push to URL

The snapshot is the files git tracks at HEAD, without tests, benchmarks and CI, plus:
* ``requirements.txt`` = ``requirements-space.txt`` (CPU torch/torchvision from the PyTorch CPU
  index) followed by every other line of this repository's ``requirements.txt`` - a Space always
  installs ``requirements.txt``, and the default Linux torch wheel pulls several GB of CUDA;
* ``.gitattributes`` routing ``*.safetensors``, images and archives through Git LFS - a Space
  refuses a push that carries binary files as plain git blobs;
* a fresh git history (one commit): this repository's history holds the binaries as plain blobs,
  and pushing it would be refused for the same reason.

The README's front matter (``sdk: gradio``, ``app_file: app.py``) and ``packages.txt`` (apt
packages) go as they are. ``--push`` needs ``git lfs`` installed; stdlib only otherwise.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = ("tests/", "benchmarks/", ".ci/", "tools/")  # not needed to run the app
CPU_ONLY = ("torch", "torchvision")  # replaced by the pins of requirements-space.txt


def tracked_files(root: Path = ROOT) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def requirement_name(line: str) -> str | None:
    """The distribution name of a requirements line ("torch>=2.3" -> "torch"), None for comments/options."""
    line = line.split("#", 1)[0].strip()
    if not line or line.startswith("-"):
        return None
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return found.group(0).lower().replace("_", "-") if found else None


def space_requirements(root: Path = ROOT) -> str:
    """requirements-space.txt, then requirements.txt without its torch / torchvision lines."""
    head = (root / "requirements-space.txt").read_text(encoding="utf-8").rstrip("\n")
    rest = [line for line in (root / "requirements.txt").read_text(encoding="utf-8").splitlines() if requirement_name(line) not in CPU_ONLY]
    return head + "\n# --- the rest of the repository's requirements.txt ---\n" + "\n".join(rest) + "\n"


def make_snapshot(out: Path, root: Path = ROOT) -> list[str]:
    """Write the snapshot into ``out`` (must not exist or be empty); returns the files written."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for rel in tracked_files(root):
        if rel.startswith(LEFT_OUT) or rel in ("requirements.txt", "requirements-space.txt", "requirements-dev.txt"):
            continue
        src = root / rel
        if not src.is_file():  # deleted in the working tree but still tracked
            continue
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out / rel)
        written.append(rel)
    (out / "requirements.txt").write_text(space_requirements(root), encoding="utf-8")
    shutil.copy2(root / ".gitattributes", out / ".gitattributes")
    return [*written, "requirements.txt", ".gitattributes"]


def push(out: Path, url: str) -> None:
    """Commit the snapshot as one commit with Git LFS and push it to ``url`` (the Space's git URL)."""
    if subprocess.run(["git", "lfs", "version"], check=False, capture_output=True).returncode != 0:
        raise SystemExit("git lfs is not installed (apt-get install git-lfs): binary files would be refused by the Space")
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "lfs", "install", "--local"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "Space snapshot"], ["git", "push", "--force", url, "main"]):
        subprocess.run(cmd, cwd=out, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="snapshot folder to create")
    parser.add_argument("--push", metavar="URL", help="the Space's git URL, e.g. https://huggingface.co/spaces/USER/NAME")
    args = parser.parse_args(argv)
    files = make_snapshot(args.out)
    print(f"{len(files)} files in {args.out} (requirements.txt: CPU torch; .gitattributes: binaries through Git LFS)")
    if args.push:
        push(args.out, args.push)
    return 0


if __name__ == "__main__":
    sys.exit(main())
