"""What a database does differently per task: one :class:`TaskSpec` each, in :data:`TASK_SPECS`.

The builder, the labeller and the filtering experiment look a task up with :func:`task_spec`
instead of branching on its name: its annotations (reader, scaling to the stored size), its
label CSVs (spec §2 columns, the last written marks a source finished), its split-file rows, the
task it shares images with and the COCO IoU type of its AP.
"""
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from miqa.datasets.index import CLS_COLUMNS, DET_COLUMNS, label_suffixes
from miqa.utils.io import atomic_write_text
from miqa.vocab import TASKS

from .coco import read_coco_annotations, scale_coco

#: The six columns every labeller returns per image (``label(...)[name][key]``, values in [0, 1]).
LABEL_KEYS = ('weighted_consistency', 'weighted_accuracy', 'mean_consistency', 'std_consistency',
              'mean_accuracy', 'std_accuracy')

Scores = Mapping[str, Mapping[str, float]]


def read_cls_annotations(path: str) -> Dict[str, List[int]]:
    """cls ``annotations``: JSON ``{src_id: class index | [indices]}`` or CSV ``src_id,labels``
    (indices split by spaces / ``;``)."""
    if path.lower().endswith('.json'):
        raw = json.loads(Path(path).read_text())
    else:
        with open(path, newline='') as file:
            rows = list(csv.reader(file))
        raw = {row[0].strip(): row[1].replace(';', ' ').split() for row in rows[1:] if len(row) >= 2}
    return {str(k): sorted({int(v) for v in (vs if isinstance(vs, (list, tuple)) else [vs])})
            for k, vs in raw.items()}


def _fmt(value: float) -> str:
    return f'{value:.6f}'


def _write_cls_labels(folder: Path, src_id: str, names: Sequence[str], scores: Scores) -> None:
    header = CLS_COLUMNS + LABEL_KEYS[2:]
    lines = [','.join(header)] + [','.join([f'{src_id}/{name}'] + [_fmt(scores[name][k]) for k in LABEL_KEYS])
                                  for name in names]
    atomic_write_text(str(folder / f'{src_id}{label_suffixes("cls")["mmos"]}'), '\n'.join(lines) + '\n')


def _write_det_labels(folder: Path, src_id: str, names: Sequence[str], scores: Scores) -> None:
    for kind, suffix in label_suffixes('det').items():  # accuracy, then consistency
        key = f'weighted_{kind}'
        lines = [','.join(DET_COLUMNS)] + [f'{name},{_fmt(scores[name][key])}' for name in names]
        atomic_write_text(str(folder / f'{src_id}{suffix}'), '\n'.join(lines) + '\n')


def _cls_split_row(src_id: str, record: Mapping[str, Any]) -> tuple:
    return f'{src_id}.JPEG', record.get('category', ''), ''  # no selection score: left empty


def _det_split_row(src_id: str, record: Mapping[str, Any]) -> tuple:
    return (int(src_id) if src_id.isdigit() and len(src_id) == 12 else src_id,)  # the COCO id, else the id


@dataclass(frozen=True)
class TaskSpec:
    """One task's specifics for building and using a database (module doc)."""
    name: str
    #: the ``annotations`` file of a build config -> ``{source key: annotation}``
    read_annotations: Callable[[str], Dict[str, Any]]
    #: an annotation of a source resized by ``(sx, sy)``
    scale_annotation: Callable[[Any, float, float], Any]
    #: ``(labels folder, src_id, variant names, checked scores)``: the label CSV(s), the finishing one last
    write_labels: Callable[[Path, str, Sequence[str], Scores], None]
    split_header: Tuple[str, ...]
    #: ``(src_id, record) -> row`` of the official split CSV
    split_row: Callable[[str, Mapping[str, Any]], tuple]
    #: the task whose database shares this one's images (det and ins share ``miqa_det/images``)
    shares_images_with: Optional[str] = None
    #: COCO AP IoU type (det/ins); their annotations go to ``additional_info/instances_val2017.json``
    iou_type: Optional[str] = None

    @property
    def coco(self) -> bool:
        """Annotations in COCO form (det/ins): scaled with the images, written to the database's COCO file."""
        return self.iou_type is not None

    def label_files(self, src_id: str) -> List[str]:
        """The label CSV names of a source, in writing order (the last one marks it finished)."""
        return [f'{src_id}{suffix}' for suffix in label_suffixes(self.name).values()]


def _keep(annotation: Any, sx: float, sy: float) -> Any:
    return annotation  # class indices do not change with the image size


_DET = dict(read_annotations=read_coco_annotations, scale_annotation=scale_coco,
            write_labels=_write_det_labels, split_header=('Image Index',), split_row=_det_split_row)

#: The task descriptions, by task name (:data:`miqa.vocab.TASKS`).
TASK_SPECS: Dict[str, TaskSpec] = {
    'cls': TaskSpec('cls', read_cls_annotations, _keep, _write_cls_labels,
                    ('Image Name', 'Category', 'Quality Score'), _cls_split_row),
    'det': TaskSpec('det', shares_images_with='ins', iou_type='bbox', **_DET),
    'ins': TaskSpec('ins', shares_images_with='det', iou_type='segm', **_DET),
}


def task_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``; ``ValueError`` naming the tasks for an unknown one."""
    try:
        return TASK_SPECS[task]
    except (KeyError, TypeError):
        raise ValueError(f'unknown task {task!r}; expected one of {TASKS}') from None


__all__ = ['LABEL_KEYS', 'TASK_SPECS', 'TaskSpec', 'read_cls_annotations', 'task_spec']
