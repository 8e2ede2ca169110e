"""Packs the local CIFAR-10 folder into small parts for the GPU machine, and unpacks it there.

The device tool carries at most 64 MiB per call and the local CIFAR-10 npz
files hold 200 MB of raw pixels. `pack` stores every array losslessly and
compactly: uint8 images as planes of (R-G, G, B-G) mod 256, each row
differenced along the width mod 256, then LZMA (about 53 % of the raw
bytes); `unpack` inverts that exactly, checks each array's SHA-256 against
the one recorded at pack time, and writes the same npz files
(`train_a.npz`, `train_b.npz`, `test.npz`, `exact_subset.npz`) into a
folder that `layerwise_keras.datasets.load_arrays` reads.

Usage:
    python benchmarks/gpu_data.py pack SRC_DIR OUT_PREFIX --parts 2
        # writes OUT_PREFIX1/part, OUT_PREFIX2/part (one folder per device call)
    python benchmarks/gpu_data.py unpack DEST_DIR PART [PART ...]
"""

import argparse
import hashlib
import io
import json
import lzma
import os
import sys

import numpy as np

FILES = ("train_a.npz", "train_b.npz", "test.npz", "exact_subset.npz")


def _encode_images(x):
    """uint8 [N, H, W, 3] -> uint8 planes [3, N, H, W] of colour-decorrelated width differences (mod 256)."""
    x = x.astype(np.uint8)
    g = x[..., 1]
    planes = np.stack([x[..., 0] - g, g, x[..., 2] - g])  # uint8 arithmetic wraps mod 256
    return np.diff(planes, axis=3, prepend=np.uint8(0))


def _decode_images(planes):
    """Inverse of `_encode_images`."""
    planes = np.cumsum(planes, axis=3, dtype=np.uint8)
    g = planes[1]
    return np.stack([planes[0] + g, g, planes[2] + g], axis=-1)


def _is_image(a):
    return a.dtype == np.uint8 and a.ndim == 4 and a.shape[-1] == 3


def pack(src, prefix, parts):
    """Writes the packed folder as `parts` byte-split chunks `<prefix><i>/part`."""
    buffer = io.BytesIO()
    manifest = []
    for name in FILES:
        with np.load(os.path.join(src, name)) as d:
            for key in d.files:
                a = d[key]
                data = _encode_images(a) if _is_image(a) else a
                manifest.append({
                    "file": name, "key": key, "dtype": str(a.dtype), "shape": list(a.shape),
                    "image": bool(_is_image(a)), "offset": buffer.tell(), "nbytes": int(data.nbytes),
                    "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
                })
                buffer.write(np.ascontiguousarray(data).tobytes())
    header = json.dumps(manifest).encode()
    blob = lzma.compress(len(header).to_bytes(8, "little") + header + buffer.getvalue(), preset=6)
    size = -(-len(blob) // parts)
    for i in range(parts):
        folder = f"{prefix}{i + 1}"
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "part"), "wb") as f:
            f.write(blob[i * size:(i + 1) * size])
    print(f"packed {buffer.tell() / 1e6:.1f} MB into {len(blob) / 1e6:.1f} MB in {parts} parts")


def unpack(dest, part_paths):
    """Rebuilds the npz files in `dest` from the parts, checking every array's SHA-256."""
    blob = b"".join(open(p, "rb").read() for p in part_paths)
    raw = lzma.decompress(blob)
    n = int.from_bytes(raw[:8], "little")
    manifest = json.loads(raw[8:8 + n])
    body = memoryview(raw)[8 + n:]
    arrays = {}
    for entry in manifest:
        chunk = body[entry["offset"]:entry["offset"] + entry["nbytes"]]
        if entry["image"]:
            n_img, h, w, _ = entry["shape"]
            a = _decode_images(np.frombuffer(chunk, np.uint8).reshape(3, n_img, h, w))
        else:
            a = np.frombuffer(chunk, entry["dtype"]).reshape(entry["shape"])
        if hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() != entry["sha256"]:
            raise ValueError(f"{entry['file']}:{entry['key']} does not match its SHA-256 after unpacking.")
        arrays.setdefault(entry["file"], {})[entry["key"]] = a
    os.makedirs(dest, exist_ok=True)
    for name, content in arrays.items():
        np.savez(os.path.join(dest, name), **content)
    print(f"unpacked {len(manifest)} arrays into {dest}, SHA-256 checked")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("src")
    p.add_argument("prefix")
    p.add_argument("--parts", type=int, default=2)
    u = sub.add_parser("unpack")
    u.add_argument("dest")
    u.add_argument("parts", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.src, args.prefix, args.parts)
    else:
        unpack(args.dest, args.parts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
