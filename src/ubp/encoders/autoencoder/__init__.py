"""The `autoencoder` block: another block's output compressed by a residual denoising autoencoder."""
