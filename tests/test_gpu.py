"""CUDA checks (skipped without a GPU; run by benchmarks/gpu_smoke.sh on a GPU machine)."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper

from miqa.registry import MODELS
from miqa.utils import register_all_modules

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')]

VIT_NORM = dict(type='MIQADataPreprocessor', mean=(0.5,) * 3, std=(0.5,) * 3)


def batch(n: int = 8) -> dict:
    g = torch.Generator().manual_seed(0)
    views = torch.randint(0, 256, (n, 3, 288, 288), dtype=torch.uint8, generator=g)
    return dict(inputs=views[:, :, 32:256, 32:256].contiguous(), region_inputs=views,
                data_samples=dict(gt_score=torch.rand(n, dtype=torch.float64, generator=g),
                                  sample_idx=torch.arange(n), valid=torch.ones(n, dtype=bool)))


@pytest.fixture(scope='module', autouse=True)
def registered():
    register_all_modules(init_default_scope=False)


@pytest.mark.parametrize('amp', [False, True])
def test_ra_miqa_train_step_on_cuda(amp):
    model = MODELS.build(dict(type='RAMIQA', pretrained=False, region_cache=False,
                              data_preprocessor=VIT_NORM)).cuda()
    wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16') if amp else dict(type='OptimWrapper')
    optim = build_optim_wrapper(model, dict(wrapper, optimizer=dict(type='AdamW', lr=1e-4)))
    frozen = {k: v.clone() for k, v in model.region_encoder.state_dict().items()}
    losses = [model.train_step(batch(), optim)['loss'].item() for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    for k, v in model.region_encoder.state_dict().items():
        assert torch.equal(v, frozen[k]), k  # the region encoder stays frozen on the GPU too


def test_predict_matches_cpu():
    torch.manual_seed(0)
    cpu = MODELS.build(dict(type='RAMIQA', pretrained=False, region_cache=False,
                            data_preprocessor=VIT_NORM)).eval()
    gpu = MODELS.build(dict(type='RAMIQA', pretrained=False, region_cache=False,
                            data_preprocessor=VIT_NORM)).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    a = [s['pred_score'] for s in cpu.test_step(batch(4))]
    b = [s['pred_score'] for s in gpu.test_step(batch(4))]
    assert a == pytest.approx(b, abs=1e-4)
