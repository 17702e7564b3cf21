"""PyTorch code for the Face Interpolator CVAE: data, model, losses, training, evaluation, export."""
