"""miqa.utils.device.resolve_device: the one reading of a ``device`` option."""
import torch

from miqa.utils.device import resolve_device


def test_explicit_devices_pass_through():
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device(torch.device('cpu')) == torch.device('cpu')
    assert resolve_device('cuda:1') == torch.device('cuda', 1)


def test_auto_prefers_cuda_then_mps_when_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: True)
    assert resolve_device('auto') == resolve_device(None) == torch.device('cpu')  # machines: no MPS
    assert resolve_device('auto', mps=True) == torch.device('mps')               # the API
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert resolve_device('auto', mps=True) == resolve_device() == torch.device('cuda')
