"""Networks of the methods."""

from .blocks import FirstResBlockDown, LeakyMLP, ResBlock, init_weights
from .encoders import SUPPORTED_SIZES, Encoder28, EncoderOutput, ResNetEncoder, build_encoder
from .vgg import ConvDiscriminator, DCSMOutput, VGGBackboneNet

__all__ = ["FirstResBlockDown", "LeakyMLP", "ResBlock", "init_weights", "SUPPORTED_SIZES", "Encoder28",
           "EncoderOutput", "ResNetEncoder", "build_encoder", "ConvDiscriminator", "DCSMOutput",
           "VGGBackboneNet"]
