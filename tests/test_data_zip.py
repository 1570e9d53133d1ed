"""data/zipdata: safe extraction of uploaded class-folder zips."""

from __future__ import annotations

import io
import stat
import struct
import zipfile

import pytest
from PIL import Image

from har_demo.data.datasets import class_counts
from har_demo.data.io import load_image
from har_demo.data.zipdata import extract_zip_dataset
from har_demo.errors import DataError
from har_demo.labels import CLASSES


def _jpeg(colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), colour).save(buf, "JPEG")
    return buf.getvalue()


def make_zip(path, entries, compression=zipfile.ZIP_DEFLATED):
    """``entries``: name -> bytes, or a ZipInfo -> bytes pair list."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items() if isinstance(entries, dict) else entries:
            zf.writestr(name, data)
    return path


def test_extract_with_top_folder(tmp_path):
    entries = {f"photos/{c}/{i}.jpg": _jpeg() for c in CLASSES for i in range(2)}
    entries |= {"photos/README.txt": b"hello", "__MACOSX/photos/sitting/._0.jpg": b"junk", "photos/sitting/.DS_Store": b"x"}
    entries["photos/Standing/sub/x.png"] = _jpeg()  # case-insensitive class, nested folder, odd extension
    z = make_zip(tmp_path / "upload.zip", entries)
    dest = tmp_path / "out"
    samples = extract_zip_dataset(z, dest)
    assert class_counts(samples) == {"sitting": 2, "standing": 3, "walking_running": 2}
    assert samples.info["skipped_non_image"] == 3 and samples.info["top_folder"] == "photos"
    assert all(s.path.startswith(str(dest)) and s.source == "upload.zip" for s in samples)
    assert load_image(samples[0].path).size == (16, 12)
    assert len({s.group for s in samples}) == len(samples)
    assert not (dest / "README.txt").exists() and not (dest / "__MACOSX").exists()


def test_extract_without_top_folder(tmp_path):
    z = make_zip(tmp_path / "d.zip", {"sitting/a.jpg": _jpeg(), "walking_running/b.jpg": _jpeg()})
    samples = extract_zip_dataset(z, tmp_path / "out")
    assert sorted(s.label for s in samples) == ["sitting", "walking_running"]
    assert samples.info["top_folder"] == ""


@pytest.mark.parametrize("name", ["../evil.jpg", "sitting/../../evil.jpg", "/tmp/evil.jpg", "C:/evil.jpg", "..\\evil.jpg"])
def test_path_traversal_rejected(tmp_path, name):
    z = make_zip(tmp_path / "t.zip", {"sitting/ok.jpg": _jpeg(), name: _jpeg()})
    dest = tmp_path / "deep" / "out"
    with pytest.raises(DataError, match="unsafe entry"):
        extract_zip_dataset(z, dest)
    assert not dest.exists() and not (tmp_path / "deep" / "evil.jpg").exists()


def test_symlink_rejected(tmp_path):
    info = zipfile.ZipInfo("sitting/link.jpg")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = make_zip(tmp_path / "s.zip", [("sitting/a.jpg", _jpeg()), (info, "/etc/passwd")])
    with pytest.raises(DataError, match="symbolic link"):
        extract_zip_dataset(z, tmp_path / "out")


def test_compression_ratio_bomb(tmp_path):
    z = make_zip(tmp_path / "b.zip", {"sitting/a.jpg": _jpeg(), "sitting/bomb.bmp": b"\0" * 5_000_000})
    with pytest.raises(DataError, match="zip bomb"):
        extract_zip_dataset(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_declared_total_and_count_limits(tmp_path):
    z = make_zip(tmp_path / "n.zip", {f"standing/{i}.jpg": _jpeg() for i in range(5)})
    with pytest.raises(DataError, match="more than 4 images"):
        extract_zip_dataset(z, tmp_path / "o1", max_files=4)
    with pytest.raises(DataError, match="MiB uncompressed"):
        extract_zip_dataset(z, tmp_path / "o2", max_total_bytes=3 * len(_jpeg()))
    assert len(extract_zip_dataset(z, tmp_path / "o3", max_files=5)) == 5


def _patch_declared_size(data: bytes, new_size: int) -> bytes:
    """Make every header claim ``new_size`` uncompressed bytes (a lying zip)."""
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = b.find(sig)
        while i != -1:
            b[i + off : i + off + 4] = struct.pack("<I", new_size)
            i = b.find(sig, i + 4)
    return bytes(b)


def test_lying_headers_stopped_while_extracting(tmp_path):
    payload = bytes(range(256)) * 400  # 100 KiB, compresses a lot but under the ratio limit below
    raw = make_zip(tmp_path / "raw.zip", {"sitting/big.bmp": payload}).read_bytes()
    z = tmp_path / "liar.zip"
    z.write_bytes(_patch_declared_size(raw, 1000))
    with pytest.raises(DataError, match="big.bmp"):
        extract_zip_dataset(z, tmp_path / "out", max_ratio=1e6)
    assert not list((tmp_path / "out").rglob("*.bmp"))


def test_misspelled_class_folder(tmp_path):
    z = make_zip(tmp_path / "m.zip", {"data/sitting/a.jpg": _jpeg(), "data/walkng_running/b.jpg": _jpeg()})
    with pytest.raises(DataError, match="walkng_running.*did you mean 'walking_running'"):
        extract_zip_dataset(z, tmp_path / "out")
    z = make_zip(tmp_path / "m2.zip", {"sittin/x/a.jpg": _jpeg()})  # single misspelled folder, not a top folder
    with pytest.raises(DataError, match="'sittin'.*did you mean 'sitting'"):
        extract_zip_dataset(z, tmp_path / "out2")


def test_image_outside_class_folder(tmp_path):
    z = make_zip(tmp_path / "f.zip", {"a.jpg": _jpeg(), "sitting/b.jpg": _jpeg()})
    with pytest.raises(DataError, match="'a.jpg' is not inside a class folder"):
        extract_zip_dataset(z, tmp_path / "out")


def test_empty_and_non_zip(tmp_path):
    with pytest.raises(DataError, match="no images"):
        extract_zip_dataset(make_zip(tmp_path / "e.zip", {}), tmp_path / "o")
    with pytest.raises(DataError, match=r"no images in the zip \(2 non-image"):
        extract_zip_dataset(make_zip(tmp_path / "t.zip", {"sitting/a.txt": b"x", "b.csv": b"y"}), tmp_path / "o")
    fake = tmp_path / "photo.zip"
    fake.write_bytes(_jpeg())
    with pytest.raises(DataError, match="photo.zip: not a zip"):
        extract_zip_dataset(fake, tmp_path / "o")
    with pytest.raises(DataError, match="not found"):
        extract_zip_dataset(tmp_path / "absent.zip", tmp_path / "o")
