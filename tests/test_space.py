"""Deploying to a CPU Hugging Face Space (README "Deploy to a Space"), checked offline: every binary
file git tracks goes through Git LFS (.gitattributes), and the Space snapshot's requirements.txt
takes CPU torch/torchvision at the tested versions plus every other requirement of this repository.
What needs the hub (the push, the Space build) is not tested here; the README says so."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest

from tests.test_ui_support import REPO

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")


def _tool():
    spec = importlib.util.spec_from_file_location("make_space", REPO / "tools" / "make_space.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _binary(path) -> bool:
    """git's own test: a NUL byte in the first 8000 bytes."""
    with open(path, "rb") as fh:
        return b"\0" in fh.read(8000)


def _lfs_files(root, files) -> set[str]:
    out = subprocess.run(["git", "check-attr", "filter", "--", *files], cwd=root, check=True, capture_output=True, text=True).stdout
    return {line.split(": filter: ")[0] for line in out.splitlines() if line.endswith(": filter: lfs")}


def test_every_binary_file_tracked_in_git_goes_through_lfs():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    binary = [f for f in files if (REPO / f).is_file() and _binary(REPO / f)]
    assert any(f.endswith(".safetensors") for f in binary) and any(f.endswith(".jpg") for f in binary)  # the test sees them
    missing = sorted(set(binary) - _lfs_files(REPO, binary))
    assert not missing, f"binary files a Space would refuse (add a pattern to .gitattributes): {missing}"


def test_space_snapshot_takes_cpu_torch_and_every_other_requirement(tmp_path):
    from packaging.requirements import Requirement
    from packaging.version import Version

    tool = _tool()
    out = tmp_path / "space"
    written = tool.make_snapshot(out)
    assert (out / "app.py").is_file() and (out / "README.md").read_text().startswith("---\ntitle:")
    assert not (out / "tests").exists() and "requirements-dev.txt" not in written
    lines = [x.strip() for x in (out / "requirements.txt").read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    pins = {Requirement(x).name: Requirement(x) for x in lines[1:]}
    repo = [Requirement(x.split("#")[0]) for x in (REPO / "requirements.txt").read_text().splitlines() if x.split("#")[0].strip()]
    for req in repo:
        if req.name in ("torch", "torchvision"):
            pinned = next(iter(pins[req.name].specifier)).version
            assert pinned.endswith("+cpu") and req.specifier.contains(Version(pinned)), (req, pinned)  # CPU build, within the floor
        else:
            assert str(pins[req.name]) == str(req), req.name  # every other requirement as it is
    assert len(pins) == len(repo)
    import torch
    import torchvision

    for module, name in ((torch, "torch"), (torchvision, "torchvision")):  # the versions the tests run with here
        assert Version(next(iter(pins[name].specifier)).version).base_version == Version(module.__version__).base_version
    subprocess.run(["git", "init", "-q"], cwd=out, check=True)
    binary = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and ".git" not in p.parts and _binary(p)]
    assert binary and set(binary) <= _lfs_files(out, binary)  # no plain binary blob in the Space's one commit
