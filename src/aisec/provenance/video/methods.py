"""Post-hoc video watermarks in one registry: ``embed`` and ``detect`` on (T, C, H, W) video.

A method writes a multi-bit message into every frame of a clip and reads back per-frame logits
(T, n_bits), positive meaning bit 1; turning those into a video-level decision is the job of
:mod:`aisec.provenance.video.aggregation`. Videos are float32 (T, 3, H, W) in [0, 1], RGB.

Registered here:

* ``dwtdct`` / ``dwtdctsvd``: the classical DWT-DCT (and DWT-DCT-SVD) watermarks of the
  ``invisible-watermark`` package, called per frame through the package itself (it needs
  OpenCV and frames of at least 256 x 256). Their decoders return hard bits, so the per-frame
  "logits" are +-1.
* ``rivagan``: RivaGAN (Zhang et al., 2019, "Robust Invisible Video Watermarking with
  Attention"), the pretrained 32-bit encoder and decoder ONNX graphs shipped inside the
  ``invisible-watermark`` wheel (0.2.0, MIT), run per frame (T = 1 segments, as that package
  does) but batched over frames with ``onnxruntime``. The package feeds OpenCV BGR frames scaled
  to [-1, 1]; we do the same. The package's graphs convolve (B, 3, 1, H, W) tensors with 3D
  kernels of depth 1; by default (``graph="2d"``) we run the same weights as 2D graphs (squeeze
  the time axis, Conv 11 x 11, the same tanh / BatchNorm / channel softmax and, for the encoder,
  the same message-weighted attention sum and 0.016 residual scale), which onnxruntime executes
  with its faster 2D convolution kernels: the same outputs to float32 rounding (the tests
  compare them). ``graph="onnx"`` runs the package's graphs unchanged. Its wrapper requires H * W >= 256^2; the graphs run on smaller
  frames with lower accuracy (at 128 x 128 we measured ~0.96 clean bit accuracy on real frames).

Registered elsewhere in this package: ``hidden`` (a StegaStamp/HiDDeN-style per-frame network,
:mod:`~aisec.provenance.video.hidden`) and ``segmark`` (segments of frames through 3D convs,
:mod:`~aisec.provenance.video.segmark`), both trained here (:mod:`~aisec.provenance.video.learned`).

Threat model: the message is the detector's secret (private-key detection); the adversary holds
watermarked or real clips and perturbs them (:mod:`aisec.perturb.video`).
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aisec.errors import ConfigError, DataError, DependencyError, ParameterError
from aisec.registry import Registry

__all__ = [
    "VIDEO_WATERMARKS",
    "VideoWatermark",
    "VideoKey",
    "RivaGAN",
    "DwtDct",
    "DwtDctSvd",
    "get_video_method",
    "rivagan_throughput",
]

VIDEO_WATERMARKS: Registry[type[VideoWatermark]] = Registry("video watermark")


@dataclass(frozen=True)
class VideoKey:
    """The secret of one video watermark: the method name and its message bits (uint8 0/1)."""

    method: str
    message: np.ndarray

    def __repr__(self) -> str:  # never print the message
        return f"VideoKey(method={self.method!r}, bits={len(self.message)}, <secret>)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "aisec.video_watermark_key",
            "method": self.method,
            "message": "".join(str(int(b)) for b in self.message),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "key") -> VideoKey:
        if not isinstance(d, dict) or d.get("kind") != "aisec.video_watermark_key":
            raise ConfigError(
                f"{where}: not a video watermark key (kind must be 'aisec.video_watermark_key')"
            )
        msg = str(d.get("message", ""))
        if not msg or set(msg) - {"0", "1"}:
            raise ConfigError(f"{where}: `message` must be a string of 0/1 bits")
        return cls(str(d.get("method", "")), np.array([int(c) for c in msg], dtype=np.uint8))


class VideoWatermark(ABC):
    """A per-frame multi-bit video watermark."""

    name: ClassVar[str]
    bits: ClassVar[int]

    def keygen(self, rng: np.random.Generator) -> VideoKey:
        """A uniformly random message of :attr:`bits` bits."""
        return VideoKey(self.name, rng.integers(0, 2, self.bits).astype(np.uint8))

    def check_key(self, key: VideoKey) -> np.ndarray:
        if key.method != self.name:
            raise ConfigError(
                f"key is for video watermark {key.method!r}, not {self.name!r}: "
                "detect with the method that embedded it"
            )
        if len(key.message) != self.bits:
            raise ParameterError("key.message", f"must have {self.bits} bits", len(key.message))
        return np.asarray(key.message, dtype=np.uint8)

    def frames_per_unit(self) -> int:
        """Frames decoded together as one unit (1: per frame). Clips whose length is a multiple
        of it can be concatenated into one ``detect`` call without changing any logit."""
        return 1

    @abstractmethod
    def embed(self, video: np.ndarray, key: VideoKey) -> np.ndarray:
        """Watermarked copy of ``video`` (T, 3, H, W) in [0, 1], quantised to 8 bits."""

    @abstractmethod
    def detect(self, video: np.ndarray) -> np.ndarray:
        """Per-frame logits (T, bits), float64; positive = bit 1."""


def _rgb_video(video: Any, min_side: int) -> np.ndarray:
    from aisec.perturb.video import check_video

    x = check_video(video)
    if x.shape[1] != 3:
        raise DataError(f"video: must have 3 (RGB) channels; got {x.shape[1]}")
    if min(x.shape[-2:]) < min_side:
        raise DataError(f"video: frames must be at least {min_side} px a side; got {x.shape[-2:]}")
    return x


@VIDEO_WATERMARKS.register("rivagan", summary="RivaGAN per frame (pretrained ONNX, 32 bits)")
class RivaGAN(VideoWatermark):
    """RivaGAN's pretrained ONNX encoder/decoder from ``invisible-watermark``, batched per frame.

    Args:
        batch: frames per ONNX call.
        threads: onnxruntime intra-op threads (default 1: the machine is shared; 0: all cores,
            onnxruntime's default, as the ``invisible-watermark`` package runs it).
        model_dir: folder holding ``rivagan_encoder.onnx`` / ``rivagan_decoder.onnx`` (default:
            the installed ``invisible-watermark`` package, read by path without importing it).
        graph: ``"2d"`` (default) runs the weights as 2D ONNX graphs, ``"onnx"`` the package's
            3D graphs as shipped (module docstring).
    """

    name = "rivagan"
    bits = 32
    _sessions: ClassVar[dict[tuple[str, int, str], Any]] = {}

    def __init__(
        self,
        batch: int = 16,
        threads: int = 1,
        model_dir: str | None = None,
        graph: str = "2d",
    ) -> None:
        if batch < 1:
            raise ParameterError("rivagan.batch", "must be >= 1", batch)
        if threads < 0:
            raise ParameterError("rivagan.threads", "must be >= 0", threads)
        if graph not in ("2d", "onnx"):
            raise ParameterError("rivagan.graph", "must be '2d' or 'onnx'", graph)
        self.batch = int(batch)
        self.threads = int(threads)
        self.model_dir = model_dir
        self.graph = graph

    def _dir(self) -> Path:
        if self.model_dir is not None:
            return Path(self.model_dir)
        spec = importlib.util.find_spec("imwatermark")
        if spec is None or not spec.submodule_search_locations:
            raise DependencyError("invisible-watermark", "video")
        return Path(next(iter(spec.submodule_search_locations)))

    def _session(self, which: str) -> Any:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DependencyError("onnxruntime", "video") from None
        path = self._dir() / f"rivagan_{which}.onnx"
        graph = self.graph
        k = (str(path), self.threads, graph)
        if k not in self._sessions:
            if not path.is_file():
                from aisec.errors import InputFileError

                raise InputFileError(path, "RivaGAN ONNX model not found")
            so = ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            model: Any = str(path) if graph == "onnx" else _graph_2d(path, which)
            self._sessions[k] = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        return self._sessions[k]

    @staticmethod
    def _to_model(x: np.ndarray) -> np.ndarray:
        # RGB [0, 1] -> BGR [-1, 1] as (B, 3, 1, H, W); the package feeds OpenCV BGR frames
        return (x[:, ::-1] * 2.0 - 1.0).astype(np.float32)[:, :, None]

    def embed(self, video: np.ndarray, key: VideoKey) -> np.ndarray:
        x = _rgb_video(video, 32)
        msg = self.check_key(key).astype(np.float32)
        enc = self._session("encoder")
        out = np.empty_like(x)
        for i in range(0, len(x), self.batch):
            chunk = x[i : i + self.batch]
            data = np.repeat(msg[None], len(chunk), axis=0)
            y = enc.run(None, {"frame": self._to_model(chunk), "data": data})[0][:, :, 0]
            y = np.clip(y, -1.0, 1.0)[:, ::-1]
            out[i : i + len(chunk)] = (y + 1.0) / 2.0
        return (np.round(out * 255.0) / 255.0).astype(np.float32)

    def detect(self, video: np.ndarray) -> np.ndarray:
        x = _rgb_video(video, 32)
        dec = self._session("decoder")
        logits = [
            dec.run(None, {"frame": self._to_model(x[i : i + self.batch])})[0]
            for i in range(0, len(x), self.batch)
        ]
        return np.concatenate(logits).astype(np.float64)


def _graph_2d(path: Path, which: str) -> bytes:
    """RivaGAN's encoder or decoder re-expressed as a 2D ONNX graph (serialised) from the
    weights in ``path``; inputs and outputs keep the package's shapes ((B, 3, 1, H, W) frames,
    (B, 32) message bits for the encoder; (B, 3, 1, H, W) or (B, 32) logits out)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise DependencyError("onnx", "video") from None
    src = onnx.load(str(path))
    w = {i.name: numpy_helper.to_array(i) for i in src.graph.initializer}
    consts = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in src.graph.node
        if n.op_type == "Constant"
    }
    inits: list[Any] = []
    nodes: list[Any] = [helper.make_node("Squeeze", ["frame"], ["x"], axes=[2])]

    def param(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    def branch(pre: str, x: str, bn_after_last: bool) -> str:
        # Conv -> tanh -> BN -> Conv [-> tanh [-> BN]], as in the package's graphs
        out = x
        for conv, bn in ((0, 2), (3, 5)):
            try:
                k = param(f"{pre}.{conv}.w", w[f"{pre}.{conv}.weight"][:, :, 0])
                b = param(f"{pre}.{conv}.b", w[f"{pre}.{conv}.bias"])
            except KeyError:
                raise ParameterError(
                    f"rivagan {which}", f"must hold the RivaGAN {which} weights", str(path)
                ) from None
            out = node(
                "Conv", [out, k, b], f"{pre}{conv}.conv", kernel_shape=[11, 11], pads=[5] * 4
            )
            if conv == 3 and which == "decoder" and pre == "_conv":
                return out  # the decoder's feature branch ends on the conv
            out = node("Tanh", [out], f"{pre}{conv}.tanh")
            if conv == 3 and not bn_after_last:
                return out
            stats = [
                param(f"{pre}.{bn}.{p}", w[f"{pre}.{bn}.{p}"])
                for p in ("weight", "bias", "running_mean", "running_var")
            ]
            out = node("BatchNormalization", [out, *stats], f"{pre}{bn}.bn", epsilon=1e-5)
        return out

    att = branch("_attention", "x", bn_after_last=True)
    # softmax over channels (opset 10 flattens from `axis` on, so move channels last first)
    node("Transpose", [att], "att_t", perm=[0, 2, 3, 1])
    node("Softmax", ["att_t"], "sm_t", axis=3)
    sm = node("Transpose", ["sm_t"], "sm", perm=[0, 3, 1, 2])
    frame_in = helper.make_tensor_value_info("frame", TensorProto.FLOAT, ["b", 3, 1, "h", "w"])
    if which == "decoder":
        feat = branch("_conv", "x", bn_after_last=False)
        node("Mul", [feat, sm], "prod")
        node("ReduceMean", ["prod"], "output", axes=[2, 3], keepdims=0)
        inputs = [frame_in]
        output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["b", 32])
    else:
        # message d = 2 * data - 1 weighs the attention maps; their sum is a fourth channel
        two = param("c_two", np.asarray(consts["25"], dtype=np.float32))
        one = param("c_one", np.asarray(consts["27"], dtype=np.float32))
        node("Mul", ["data", two], "d2")
        node("Sub", ["d2", one], "d")
        node("Unsqueeze", ["d"], "d4", axes=[2, 3])
        node("Mul", [sm, "d4"], "weighted")
        node("ReduceSum", ["weighted"], "wsum", axes=[1], keepdims=1)
        node("Concat", ["x", "wsum"], "x4", axis=1)
        res = branch("_conv", "x4", bn_after_last=False)
        scale = param("c_scale", np.asarray(consts["102"], dtype=np.float32))
        node("Mul", [res, scale], "res_scaled")
        node("Add", ["x", "res_scaled"], "y")
        node("Unsqueeze", ["y"], "output", axes=[2])
        inputs = [frame_in, helper.make_tensor_value_info("data", TensorProto.FLOAT, ["b", 32])]
        output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["b", 3, 1, "h", "w"])
    graph = helper.make_graph(nodes, f"rivagan_{which}_2d", inputs, [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = src.ir_version
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


class _PackageClassical(VideoWatermark):
    """A classical method of ``invisible-watermark`` applied frame by frame by the package."""

    bits = 32
    package_method: ClassVar[str]

    def __init__(self, **_: Any) -> None:
        try:
            import imwatermark
        except ImportError as e:
            raise DependencyError(e.name or "invisible-watermark", "video") from None
        self._pkg = imwatermark

    @staticmethod
    def _bgr(frame: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(
            np.round(frame.transpose(1, 2, 0) * 255).astype(np.uint8)[..., ::-1]
        )

    def embed(self, video: np.ndarray, key: VideoKey) -> np.ndarray:
        x = _rgb_video(video, 256)
        enc = self._pkg.WatermarkEncoder()
        enc.set_watermark("bits", [int(b) for b in self.check_key(key)])
        out = [enc.encode(self._bgr(f), self.package_method)[..., ::-1] for f in x]
        return (np.stack(out).transpose(0, 3, 1, 2) / 255.0).astype(np.float32)

    def detect(self, video: np.ndarray) -> np.ndarray:
        x = _rgb_video(video, 256)
        dec = self._pkg.WatermarkDecoder("bits", self.bits)
        bits = np.array([dec.decode(self._bgr(f), self.package_method) for f in x], dtype=float)
        return bits * 2.0 - 1.0


@VIDEO_WATERMARKS.register("dwtdct", summary="DWT-DCT per frame (invisible-watermark, 32 bits)")
class DwtDct(_PackageClassical):
    name = "dwtdct"
    package_method = "dwtDct"


@VIDEO_WATERMARKS.register(
    "dwtdctsvd", summary="DWT-DCT-SVD per frame (invisible-watermark, 32 bits)"
)
class DwtDctSvd(_PackageClassical):
    name = "dwtdctsvd"
    package_method = "dwtDctSvd"


def rivagan_throughput(
    frames: np.ndarray, key: VideoKey, threads: int = 1, reps: int = 2
) -> dict[str, float]:
    """Frames per second of embed and detect: this module (batched) against the package per frame.

    Fair by construction: the same frames (>= 256 x 256, the package's minimum), the same
    onnxruntime thread settings on both sides (``threads`` intra-op threads, one inter-op
    thread; the package's class-level sessions are swapped for sessions of its own ONNX files
    with those settings for the duration, then restored; ``threads=0`` keeps the package's own
    sessions and gives ours onnxruntime's default too), both sides warmed up on one frame, and
    ``reps`` rounds that alternate ours and the package's so that a change in machine load hits
    both. Detect also runs our batched path on the package's unchanged 3D decoder graph
    (``onnx_graph_detect_fps``), which separates the gain of batching from that of the 2D graph.
    """
    import time

    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
        from imwatermark.rivaGan import RivaWatermark
    except ImportError as e:
        raise DependencyError(e.name or "invisible-watermark", "video") from None
    if reps < 1:
        raise ParameterError("reps", "must be >= 1", reps)
    x = _rgb_video(frames, 256)
    ours = RivaGAN(threads=threads)
    ours_3d = RivaGAN(threads=threads, graph="onnx")
    saved = (RivaWatermark.encoder, RivaWatermark.decoder)
    try:
        if threads == 0:
            WatermarkEncoder.loadModel()
        else:
            RivaWatermark.encoder = ours_3d._session("encoder")
            RivaWatermark.decoder = ours_3d._session("decoder")
        enc = WatermarkEncoder()
        enc.set_watermark("bits", [int(b) for b in key.message])
        dec = WatermarkDecoder("bits", 32)
        bgr = [_PackageClassical._bgr(f) for f in x]
        # warm-up: every session once on one frame
        ours.detect(ours.embed(x[:1], key))
        ours_3d.detect(x[:1])
        dec.decode(enc.encode(bgr[0], "rivaGan"), "rivaGan")
        t = dict.fromkeys(("embed", "detect", "detect_3d", "pkg_embed", "pkg_detect"), 0.0)
        for _ in range(reps):
            t0 = time.perf_counter()
            wm = ours.embed(x, key)
            t1 = time.perf_counter()
            pkg_wm = [enc.encode(b, "rivaGan") for b in bgr]
            t2 = time.perf_counter()
            ours.detect(wm)
            t3 = time.perf_counter()
            for b in pkg_wm:
                dec.decode(b, "rivaGan")
            t4 = time.perf_counter()
            ours_3d.detect(wm)
            t5 = time.perf_counter()
            t["embed"] += t1 - t0
            t["pkg_embed"] += t2 - t1
            t["detect"] += t3 - t2
            t["pkg_detect"] += t4 - t3
            t["detect_3d"] += t5 - t4
    finally:
        RivaWatermark.encoder, RivaWatermark.decoder = saved
    n = len(x) * reps
    return {
        "frames": float(len(x)),
        "reps": float(reps),
        "threads": float(threads),
        "embed_fps": n / t["embed"],
        "detect_fps": n / t["detect"],
        "onnx_graph_detect_fps": n / t["detect_3d"],
        "package_embed_fps": n / t["pkg_embed"],
        "package_detect_fps": n / t["pkg_detect"],
    }


def get_video_method(name: str, **kwargs: Any) -> VideoWatermark:
    """A registered video watermark by name."""
    return VIDEO_WATERMARKS.get(name)(**kwargs)
