"""Install miqa: ``pip install -r requirements.txt && pip install -e ".[dev]"``."""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildWithConfigs(build_py):
    """``build_py`` that also copies ``configs/`` into the built package as ``miqa/.mim/configs``
    (as mmpretrain ships ``.mim/configs``), so a non-editable install finds the configs by name;
    an editable install reads the repository's (``miqa.utils.paths.configs_dir``). Nothing is
    written to the source tree, so git holds the configs once."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = Path(self.build_lib) / 'miqa' / '.mim' / 'configs'
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(HERE / 'configs', target,
                        ignore=shutil.ignore_patterns('__pycache__', '*.py[cod]'))


def read_requirements(path: Path) -> list:
    """Requirement lines of ``path`` without comments (pins live in requirements.txt only)."""
    lines = (line.split('#', 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


version = {}
exec((HERE / 'miqa' / 'version.py').read_text(), version)

setup(
    name='miqa',
    version=version['__version__'],
    description='Image quality assessment for machines: RA-MIQA, MIQD-2.5M tools, trained with mmengine',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='MIT',
    python_requires='>=3.10',
    packages=find_packages(include=['miqa', 'miqa.*', 'machine_iqa', 'machine_iqa.*']),
    install_requires=read_requirements(HERE / 'requirements.txt'),
    extras_require={
        'dev': ['pytest==9.2.0', 'pytest-cov==7.1.0', 'ruff==0.17.6', 'pre-commit==4.7.0',
                'scikit-image==0.26.0', 'import-linter==2.16'],  # lint-imports: the layers of .importlinter
        # miqa export --format onnx (torch.export-based exporter) and its onnxruntime parity check
        'export': ['onnx==1.23.2', 'onnxscript==0.7.2', 'onnxruntime==1.32.0'],
    },
    package_data={'miqa': ['evaluation/paper/*.csv', 'evaluation/paper/*.md', 'database/data/*.csv',
                           'database/data/*.txt', 'apis/model_zoo.csv', 'hub/weights.csv']},
    cmdclass={'build_py': BuildWithConfigs},
    entry_points={'console_scripts': ['miqa=miqa.cli:main']},
    classifiers=[
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: MIT License',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
)
