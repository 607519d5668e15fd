"""Model ports (pure nn.Modules): IC-GAN generator and instance encoder, MaskGIT."""
