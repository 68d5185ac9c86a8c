"""Weight-sharing supernets: elastic layers, ``set_active``/``active``/``extract``."""

from search_spaces import autoformer_t, ofa_mbv3, tiny_mbv3, tiny_vit
from supernets.base import Supernet
from supernets.bn import recalibrate_bn
from supernets.counting import count_macs_params
from supernets.mbv3 import OFAMobileNetV3Supernet
from supernets.ofa_checkpoint import CheckpointMismatchError, load_ofa_state_dict
from supernets.vit import ElasticViTSupernet
from supernets.registry import UnknownSupernetError, create_supernet, list_supernets, register_supernet


def ofa_mbv3_supernet(*, num_classes: int = 1000, in_channels: int = 3, seed: int = 0,
                      dropout_rate: float = 0.1) -> OFAMobileNetV3Supernet:
    """OFA's MobileNetV3 supernet (width 1.0) over the ``ofa_mbv3`` space."""
    space = ofa_mbv3(num_classes=num_classes, in_channels=in_channels)
    return OFAMobileNetV3Supernet(space=space, seed=seed, dropout_rate=dropout_rate)


def tiny_mbv3_supernet(*, num_classes: int = 10, in_channels: int = 1, seed: int = 0,
                       dropout_rate: float = 0.1) -> OFAMobileNetV3Supernet:
    """The narrow test/quickstart supernet over the ``tiny_mbv3`` space."""
    space = tiny_mbv3(num_classes=num_classes, in_channels=in_channels)
    return OFAMobileNetV3Supernet(space=space, seed=seed, dropout_rate=dropout_rate)


def autoformer_t_supernet(*, num_classes: int = 1000, in_channels: int = 3, seed: int = 0,
                          dropout_rate: float = 0.0) -> ElasticViTSupernet:
    """AutoFormer-T's elastic ViT over the ``autoformer_t`` space (224 px, patch 16)."""
    space = autoformer_t(num_classes=num_classes, in_channels=in_channels)
    return ElasticViTSupernet(space=space, seed=seed, dropout_rate=dropout_rate)


def tiny_vit_supernet(*, num_classes: int = 10, in_channels: int = 1, seed: int = 0,
                      dropout_rate: float = 0.0) -> ElasticViTSupernet:
    """The MNIST-sized elastic ViT over the ``tiny_vit`` space (28 px, patch 4 or 7)."""
    space = tiny_vit(num_classes=num_classes, in_channels=in_channels)
    return ElasticViTSupernet(space=space, seed=seed, dropout_rate=dropout_rate)


register_supernet("ofa_mbv3", ofa_mbv3_supernet)
register_supernet("tiny_mbv3", tiny_mbv3_supernet)
register_supernet("tiny_vit", tiny_vit_supernet)
register_supernet("autoformer_t", autoformer_t_supernet)

__all__ = [
    "CheckpointMismatchError", "ElasticViTSupernet", "OFAMobileNetV3Supernet", "load_ofa_state_dict", "Supernet", "UnknownSupernetError", "count_macs_params", "create_supernet",
    "list_supernets", "ofa_mbv3_supernet", "recalibrate_bn", "register_supernet", "tiny_mbv3_supernet",
    "autoformer_t_supernet", "tiny_vit_supernet",
]
