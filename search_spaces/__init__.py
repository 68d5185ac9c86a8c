"""Search spaces: settings, architectures and layer tables. numpy only, never torch."""

from search_spaces.accelerator import AcceleratorSpace, with_accelerator
from search_spaces.arch import ArchConfig
from search_spaces.choice import Choice
from search_spaces.errors import (
    DuplicateNameError,
    InvalidArchError,
    NASError,
    NoLayerIRError,
    UnknownNameError,
    UnknownSpaceError,
)
from search_spaces.layers import ACTIVATIONS, OPS, PRECISION_BITS, LayerSpec
from search_spaces.mobilenet_v3 import MobileNetV3Space, StageSpec, make_divisible, ofa_mbv3, tiny_mbv3
from search_spaces.quantization import QuantizedSpace, QuantPolicy, quantized
from search_spaces.registry import get_space, list_spaces, register_space
from search_spaces.space import SearchSpace
from search_spaces.elastic import ElasticFamily
from search_spaces.vit import ViTSpace, autoformer_t, tiny_vit

register_space("ofa_mbv3", ofa_mbv3)
register_space("tiny_mbv3", tiny_mbv3)
register_space("autoformer_t", autoformer_t)
register_space("tiny_vit", tiny_vit)

__all__ = [
    "ACTIVATIONS", "OPS", "AcceleratorSpace", "with_accelerator", "PRECISION_BITS", "ArchConfig", "QuantPolicy", "QuantizedSpace", "quantized", "Choice", "DuplicateNameError", "InvalidArchError", "LayerSpec",
    "MobileNetV3Space", "NASError", "NoLayerIRError", "SearchSpace", "StageSpec", "UnknownNameError",
    "UnknownSpaceError", "ElasticFamily", "ViTSpace", "autoformer_t", "tiny_vit", "get_space", "list_spaces", "make_divisible", "ofa_mbv3", "register_space", "tiny_mbv3",
]
