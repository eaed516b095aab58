#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (Fuzz/corpus/<target>/): small valid files
plus the shapes of the inputs that once crashed the readers. Needs numpy and h5py.
Re-run after changing a reader's format: `python3 Fuzz/make_corpus.py`."""
import io, os, shutil, struct, zipfile
import h5py, numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
out = lambda target, name: os.path.join(here, "corpus", target, name)

def put(target, name, data):
    os.makedirs(os.path.dirname(out(target, name)), exist_ok=True)
    with open(out(target, name), "wb") as f:
        f.write(data)

# --- pickles (protocol 2, what torch.save writes) ---------------------------------------
def uni(s):
    b = s.encode(); return b"X" + struct.pack("<I", len(b)) + b
def glob(m, n): return b"c" + m.encode() + b"\n" + n.encode() + b"\n"
def long(v): return b"\x8a\x08" + struct.pack("<q", v)
def state_pickle(offset=0, shape=(1, 1, 16), strides=(16, 16, 1), count=16):
    p = b"\x80\x02}(" + uni("cls_token") + glob("torch._utils", "_rebuild_tensor_v2") + b"(("
    p += uni("storage") + glob("torch", "FloatStorage") + uni("0") + uni("cpu") + long(count) + b"tQ"
    p += long(offset) + b"(" + b"".join(map(long, shape)) + b"t(" + b"".join(map(long, strides)) + b"t"
    p += b"\x89" + glob("collections", "OrderedDict") + b")RtRu."
    return p

pickles = {
    "good": state_pickle(),
    "negative_stride": state_pickle(strides=(16, 16, -1)),
    "offset_near_int_max": state_pickle(offset=2**63 - 3),
    "shape_2_31_squared": state_pickle(shape=(2**31, 2**31), strides=(0, 0)),
    "length_2_64_minus_1": b"\x80\x02\x8d" + b"\xff" * 8 + b".",
    "deep_tuple": b"\x80\x02)" + b"\x85" * 300 + b".",
    "cyclic_list": b"\x80\x02]q\x00h\x00a.",
}
for name, data in pickles.items():
    put("pickle", name, data)

def pth(pickle, storage=bytes(64)):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle)
        z.writestr("archive/byteorder", b"little")
        z.writestr("archive/data/0", storage)
    return buf.getvalue()

for name, data in pickles.items():
    put("pth", name + ".pth", pth(data))

# --- safetensors -----------------------------------------------------------------------
def st(header, data=bytes(64)):
    h = header.encode(); return struct.pack("<Q", len(h)) + h + data
put("safetensors", "good", st('{"a": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}, "__metadata__": {"format": "pt"}}'))
put("safetensors", "f16", st('{"a": {"dtype": "F16", "shape": [2, 16], "data_offsets": [0, 64]}}'))
put("safetensors", "offsets_near_int_max", st('{"a": {"dtype": "F32", "shape": [4], "data_offsets": [9223372036854775800, 9223372036854775807]}}'))
put("safetensors", "shape_2_31_squared", st('{"a": {"dtype": "F32", "shape": [2147483648, 2147483648], "data_offsets": [0, 16]}}'))

# --- HDF5 weights and checkpoints --------------------------------------------------------
def h5(name, build):
    path = out("hdf5", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w", libver="earliest") as f:
        build(f)

def checkpoint(f, step=3, rng=(1, 2, 3, 4)):
    f.attrs["format"] = "causal-tune-checkpoint"; f.attrs["version"] = np.int64(1)
    f.attrs["step"] = step; f.attrs["rng_state"] = np.array(rng, dtype=np.uint64)
    f.attrs["world_size"] = np.int64(1); f.attrs["optimizer_steps"] = np.int64(3)
    for g in ["params", "optimizer/exp_avg", "optimizer/exp_avg_sq"]:
        f[g + "/peft/scale"] = np.ones(1, np.float32)
        f[g + "/head/linear/weight"] = np.zeros((19, 8), np.float32)
h5("checkpoint.h5", checkpoint)
h5("step_negative.h5", lambda f: checkpoint(f, step=np.int64(-5)))
h5("step_string.h5", lambda f: checkpoint(f, step="12"))
h5("rng_short.h5", lambda f: checkpoint(f, rng=(1, 2)))
h5("weights.h5", lambda f: [f.create_dataset("backbone/cls_token", data=np.zeros((1, 1, 16), np.float32)),
                            f.create_dataset("backbone/blocks.0.norm1.weight", data=np.ones(16, np.float16))])
h5("dataset_100000_squared.h5", lambda f: f.create_dataset("cls_token", shape=(100000, 100000), dtype="f4", chunks=(100, 100)))

# --- images ----------------------------------------------------------------------------
images = os.path.join(root, "Tests", "DataTests", "Fixtures", "images")
for name in ["grey.png", "palette.png", "photo.jpg"]:
    shutil.copy(os.path.join(images, name), out("image", name))
import zlib
def png_chunk(kind, data): return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def png(w, h, raw):
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))
put("image", "ihdr_100000_squared.png", png(100000, 100000, bytes(300)))
jpg = bytearray(open(os.path.join(images, "photo.jpg"), "rb").read())
sof = next(i for i in range(2, len(jpg) - 9) if jpg[i] == 0xFF and jpg[i + 1] in (0xC0, 0xC1, 0xC2))
jpg[sof + 5:sof + 9] = b"\xff\xdc\xff\xdc"   # 65500 x 65500
put("image", "sof_65500_squared.jpg", bytes(jpg))

# --- configs ---------------------------------------------------------------------------
shutil.copy(os.path.join(root, "configs", "debug-synthetic.yaml"), out("config", "debug-synthetic.yaml"))
put("config", "minimal.yaml", b"model: {backbone: {weights: random}}\ntrain: {iters: 5, betas: [0.9, 0.99]}\n")
bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 9) + "]\n" for i in range(1, 10))
put("config", "alias_bomb.yaml", bomb.encode())
put("config", "deep_flow.yaml", b"[" * 300)
put("config", "deep_block.yaml", b"x: " + b"- " * 300 + b"1\n")
put("config", "out_of_range.yaml", b"model: {backbone: {weights: random}, head: {num_classes: 300}, peft: {filter: {high: 5}}}\ntrain: {betas: [0.9, 1.0]}\n")
