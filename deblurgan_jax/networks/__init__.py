"""The networks: ResNet generator, PatchGAN critic and VGG features (`models`), the convolution
backends they run on (`conv_ops`) and whole-image / tiled restoration (`inference`)."""
