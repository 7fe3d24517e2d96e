"""The shape of an LSTM LM (:class:`ModelConfig`) and the names and shapes of its parameters.

Kept apart from :mod:`rescorer.lm.model` so that loading a model's weights for the compiled CPU
kernels (:mod:`rescorer.pack.numpy_lm`) needs no PyTorch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Tuple

from rescorer.settings import settings_from_dict


@dataclass(frozen=True)
class ModelConfig:
    """Shape of an :class:`LSTMLM`; ``vocab_size`` counts ``<s>`` (outputs = vocab_size - 1)."""

    vocab_size: int
    embed_dim: int = 200
    hidden_dim: int = 200
    layers: int = 1
    dropout: float = 0.0
    tie_embeddings: bool = False
    input_linear: bool = False
    output_linear: bool = False
    act_bits: int = 0  # >0: LSTM matrix inputs quantized to this many bits (multibit)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return settings_from_dict(cls, d, "model")

    @property
    def output_size(self) -> int:
        return self.vocab_size - 1


def parameter_shapes(cfg: ModelConfig) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of every parameter of :class:`rescorer.lm.model.LSTMLM` built from ``cfg`` (its state dict)."""
    E, H, V, O = cfg.embed_dim, cfg.hidden_dim, cfg.vocab_size, cfg.output_size
    shapes: Dict[str, Tuple[int, ...]] = {"embedding.weight": (V, E)}
    if cfg.input_linear:
        shapes.update({"input_linear.weight": (E, E), "input_linear.scale": (E,), "input_linear.bias": (E,)})
    for k in range(cfg.layers):
        shapes.update({f"lstm.weight_ih_l{k}": (4 * H, E if k == 0 else H), f"lstm.weight_hh_l{k}": (4 * H, H),
                       f"lstm.bias_ih_l{k}": (4 * H,), f"lstm.bias_hh_l{k}": (4 * H,)})
    if cfg.output_linear:
        shapes.update({"output_linear.weight": (H, H), "output_linear.scale": (H,), "output_linear.bias": (H,)})
    if not cfg.tie_embeddings:
        shapes["decoder.weight"] = (O, H)
    shapes["decoder.bias"] = (O,)
    return shapes
