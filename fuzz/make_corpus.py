#!/usr/bin/env python3
# Writes the fuzz seed corpus (fuzz/corpus/<target>/): small valid and near-valid inputs.
# The files are checked in; rerun this after changing it (python3, standard library only).
# fuzz/corpus/fuzz_onnx/ is not written here: its seeds are PyTorch exports, written by
# tests/fixtures/make_onnx_fixtures.py (--fuzz-seeds-only).
import gzip
import json
import os
import struct
import sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), laid out contiguously."""
    hdr, off, body = {}, 0, b""
    if metadata:
        hdr["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        body += raw
    text = json.dumps(hdr, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + body


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def idx(code, dims, raw):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + raw


# --- safetensors: a checkpoint, a data set, other dtypes, metadata, edge shapes ---
meta = {"hspec.activation": "tanh", "hspec.loss": "ce"}
put("fuzz_safetensors", "model.safetensors", safetensors([
    ("0.weight", "F32", [3, 2], f32(*range(6))), ("0.bias", "F32", [3], f32(1, 2, 3)),
    ("2.weight", "F32", [2, 3], f32(*range(6))), ("2.bias", "F32", [2], f32(0, 1))], meta))
put("fuzz_safetensors", "data.safetensors", safetensors([
    ("inputs", "F32", [4, 2], f32(*range(8))),
    ("labels", "I64", [4], struct.pack("<4q", 0, 1, 1, 0))]))
put("fuzz_safetensors", "targets.safetensors", safetensors([
    ("inputs", "F64", [2, 1, 2], struct.pack("<4d", 1, 2, 3, 4)),
    ("targets", "F16", [2, 1], struct.pack("<2H", 0x3C00, 0xC000))]))
put("fuzz_safetensors", "dtypes.safetensors", safetensors([
    ("a", "BF16", [2], struct.pack("<2H", 0x3F80, 0x7F80)), ("b", "I32", [1], b"\x01\0\0\0"),
    ("c", "I16", [1], b"\xff\xff"), ("d", "I8", [1], b"\x80"), ("e", "U8", [1], b"\xff"),
    ("f", "BOOL", [1], b"\x01"), ("g", "F32", [0, 5], b"")]))
put("fuzz_safetensors", "bare_linear.safetensors", safetensors([
    ("weight", "F32", [1, 2], f32(0.5, -0.5)), ("bias", "F32", [1], f32(0.1))]))
put("fuzz_safetensors", "bad_json.safetensors", struct.pack("<Q", 9) + b'{"a":[1,]')

# --- IDX: first byte = mode of fuzz_idx.cpp (0 read_idx, 1 dataset, 2 images+labels,
# 3 dataset from the bytes gzip-compressed by the harness) ---
img = idx(0x08, [3, 2, 2], bytes(range(12)))
lab = idx(0x08, [3], bytes([0, 1, 2]))
put("fuzz_idx", "u8_images", b"\0" + img)
put("fuzz_idx", "f32_images", b"\1" + idx(0x0D, [2, 2], struct.pack(">4f", 1, 2, 3, 4)))
put("fuzz_idx", "f64_i16_i32", b"\0" + idx(0x0E, [1], struct.pack(">d", 1.5)))
put("fuzz_idx", "i16", b"\0" + idx(0x0B, [2], struct.pack(">2h", -1, 7)))
put("fuzz_idx", "i32_rank4", b"\0" + idx(0x0C, [1, 1, 1, 2], struct.pack(">2i", -5, 5)))
put("fuzz_idx", "images_labels", b"\2" + struct.pack("<H", len(img)) + img + lab)
put("fuzz_idx", "gzip_by_harness", b"\3" + img)
put("fuzz_idx", "gzip_in_file", b"\1" + gzip.compress(img, mtime=0))

# --- command lines: NUL-separated arguments ---
def argv(*a):
    return "\0".join(a).encode()

put("fuzz_cli", "basic", argv("analyze", "--model", "m.safetensors", "--data", "d.safetensors"))
put("fuzz_cli", "full", argv(
    "analyze", "--model", "m", "--data", "d", "--labels", "l", "--activation", "gelu",
    "--loss", "mse", "--top", "5", "--bottom", "3", "--curvature", "ggn", "--precision", "fp64",
    "--block", "4", "--tol", "1e-8", "--max-hvps", "1000", "--max-basis", "60", "--samples",
    "100", "--seed", "7", "--device", "cpu", "--max-memory", "1.5G", "--json", "-",
    "--no-timings"))
put("fuzz_cli", "exact", argv("analyze", "--model=m", "--data=d", "--exact", "--max-memory=512M"))
put("fuzz_cli", "train", argv(
    "train", "--data", "d", "--layers", "784-128-10", "--activation", "relu", "--loss", "ce",
    "--batch", "64", "--lr", "0.1", "--epochs", "2", "--out", "m.safetensors", "--samples", "9"))
put("fuzz_cli", "version", argv("--version"))
put("fuzz_cli", "help", argv("analyze", "--help"))
print("corpus written under", root, file=sys.stderr)
