"""Per-backbone normalisation on the model's device (spec §6).

The data pipeline hands uint8 CHW tensors (4x less to copy to the GPU); this preprocessor
casts them to float, scales to [0, 1] and normalises with the backbone's mean/std
(0.5/0.5 for ViT and RA-MIQA, ImageNet for CNNs) -- and the RA-MIQA region view with its
own encoder's statistics (ImageNet). Float inputs are taken as already normalised.
"""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from miqa.registry import MODELS
from miqa.vocab import IMAGENET_MEAN, IMAGENET_STD

VIT_MEAN = VIT_STD = (0.5, 0.5, 0.5)


@MODELS.register_module()
class MIQADataPreprocessor(BaseDataPreprocessor):
    """Move a collated batch to the device and normalise ``inputs`` and ``region_inputs``.

    Args:
        mean, std: statistics for ``inputs`` in [0, 1] units.
        region_mean, region_std: statistics for ``region_inputs`` (RA-MIQA's region view).
    """

    def __init__(self, mean: Sequence[float] = VIT_MEAN, std: Sequence[float] = VIT_STD,
                 region_mean: Sequence[float] = IMAGENET_MEAN,
                 region_std: Sequence[float] = IMAGENET_STD,
                 non_blocking: Optional[bool] = False) -> None:
        super().__init__(non_blocking)
        for name, value in (('mean', mean), ('std', std), ('region_mean', region_mean),
                            ('region_std', region_std)):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32).view(-1, 1, 1), False)

    @staticmethod
    def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            return x.float()
        return (x.float().div_(255.0) - mean) / std

    def normalise_region(self, x: torch.Tensor) -> torch.Tensor:
        """The region view's normalisation (also for views remade after the loader skipped them)."""
        return self._normalise(x, self.region_mean, self.region_std)

    def region_context(self) -> str:
        """What of this preprocessor decides the region encoder's input (a region-cache key part)."""
        return f'region_mean={self.region_mean.flatten().tolist()}|std={self.region_std.flatten().tolist()}'

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        data['inputs'] = self._normalise(data['inputs'], self.mean, self.std)
        if data.get('region_inputs') is not None:  # absent (or fewer rows) when views were skipped
            data['region_inputs'] = self.normalise_region(data['region_inputs'])
        return data
