"""PyTorch reference networks written after the 2018 DeblurGAN code (KupynOrest/DeblurGAN,
models/networks.py) with the same state_dict key names, used as independent references for the
Flax modules and the importers. Test-only: nothing in the library imports this."""

import torch
from torch import nn


class ResnetBlock(nn.Module):
    """2018 block: two reflection-padded 3x3 convs (with biases), InstanceNorm, ReLU, dropout."""

    def __init__(self, dim, use_dropout=True):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            nn.InstanceNorm2d(dim),
            nn.ReLU(True),
            nn.Dropout(0.5 if use_dropout else 0.0),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            nn.InstanceNorm2d(dim),
        )

    def forward(self, x):
        return x + self.conv_block(x)


class OneConvResnetBlock(nn.Module):
    """The 2019 refactor's block: one conv, InstanceNorm tracking running statistics."""

    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            nn.InstanceNorm2d(dim, track_running_stats=True),
            nn.ReLU(True),
            nn.Dropout(0.5),
        )

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, ngf=64, n_blocks=9, learn_residual=True, block=ResnetBlock):
        super().__init__()
        self.learn_residual = learn_residual
        layers = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, 7, bias=True),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                nn.InstanceNorm2d(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [block(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=True
                ),
                nn.InstanceNorm2d(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        out = self.model(x)
        if self.learn_residual:
            out = torch.clamp(x + out, min=-1, max=1)
        return out


class NLayerDiscriminator(nn.Module):
    """The original PatchGAN (WGAN-GP: no sigmoid); every conv has a bias, no norm on the first."""

    def __init__(self, ndf=64, n_layers=3):
        super().__init__()
        kw, padw = 4, 2
        seq = [nn.Conv2d(3, ndf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            seq += [
                nn.Conv2d(ndf * prev, ndf * mult, kw, stride=2, padding=padw, bias=True),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        seq += [
            nn.Conv2d(ndf * prev, ndf * mult, kw, stride=1, padding=padw, bias=True),
            nn.InstanceNorm2d(ndf * mult),
            nn.LeakyReLU(0.2, True),
        ]
        seq += [nn.Conv2d(ndf * mult, 1, kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


class VGGTrunk(nn.Module):
    """torchvision `vgg19().features[:16]` (same as VGG16's up to conv3_3): keys
    features.{0,2,5,7,10,12,14}. `after_relu=False` stops at index 14 like the original code."""

    def __init__(self, after_relu=True):
        super().__init__()
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256]
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(True)]
                c = v
        self.features = nn.Sequential(*(layers if after_relu else layers[:-1]))

    def forward(self, x):
        return self.features(x)


def randomize_biases(module, scale=1.0, seed=0):
    """Large random biases, so tests show that dropping the ones before InstanceNorm is exact."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


def nchw(x):
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)
