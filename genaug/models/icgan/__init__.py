"""IC-GAN (instance-conditioned BigGAN) port: generator, SwAV instance encoder, checkpoint conversion."""

from genaug.models.icgan.config import ICGANConfig
from genaug.models.icgan.encoder import EncoderConfig, InstanceEncoder
from genaug.models.icgan.generator import Generator

__all__ = ["ICGANConfig", "Generator", "InstanceEncoder", "EncoderConfig"]
