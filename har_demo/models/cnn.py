"""Small models trained from scratch: the study's baseline CNN, its regularised variant, and a
flattened-pixel MLP."""

from __future__ import annotations

from torch import nn

from ..labels import CLASSES
from .base import HarModel


def _block(cin: int, cout: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers += [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


class SmallCNN(HarModel):
    """Three conv blocks (3x3 conv, [BN], ReLU, 2x2 max-pool) + a 2-layer FC head.

    An adaptive average pool to ``pool x pool`` before flattening keeps the head size fixed for
    any input size (and the checkpoint small)."""

    family = "cnn"

    def __init__(self, input_size=128, widths=(32, 64, 128), hidden=256, pool=6, batch_norm=False, dropout=0.0):
        widths = tuple(int(w) for w in widths)
        super().__init__(
            input_size,
            config={"input_size": input_size, "widths": list(widths), "hidden": hidden, "pool": pool, "batch_norm": batch_norm, "dropout": dropout},
        )
        chans = (3, *widths)
        self.features = nn.Sequential(*[_block(chans[i], chans[i + 1], batch_norm) for i in range(len(widths))])
        self.pool = nn.AdaptiveAvgPool2d(pool)
        head: list[nn.Module] = [nn.Flatten()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head += [nn.Linear(widths[-1] * pool * pool, hidden), nn.ReLU()]
        if dropout:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, len(CLASSES)))
        self.head = nn.Sequential(*head)

    def forward(self, x):
        return self.head(self.pool(self.features(x)))

    def cam_layer(self):
        # ReLU output of the last conv block (before its max-pool).
        last = self.features[-1]
        return [m for m in last if isinstance(m, nn.ReLU)][-1]


class PixelMLP(HarModel):
    """Flattened pixels -> MLP. No spatial structure: explained by model-agnostic methods."""

    family = "mlp"

    def __init__(self, input_size=64, hidden=(256, 128), dropout=0.2):
        hidden = tuple(int(h) for h in hidden)
        super().__init__(input_size, config={"input_size": input_size, "hidden": list(hidden), "dropout": dropout})
        dims = (3 * input_size * input_size, *hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(len(hidden)):
            layers += [nn.Linear(dims[i], dims[i + 1]), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(dims[-1], len(CLASSES)))
        self.net = nn.Sequential(*layers)

    def set_input_size(self, size: int) -> None:
        if int(size) != self.input_size:
            raise ValueError("the pixel MLP has a fixed input size")

    def forward(self, x):
        return self.net(x)


def build_cnn_base(pretrained: bool = True, **config) -> SmallCNN:
    return SmallCNN(**{"batch_norm": False, "dropout": 0.0, **config})


def build_cnn_gen(pretrained: bool = True, **config) -> SmallCNN:
    return SmallCNN(**{"batch_norm": True, "dropout": 0.3, **config})


def build_fnn(pretrained: bool = True, **config) -> PixelMLP:
    return PixelMLP(**config)
