import csv
import io
import tempfile
import zipfile
from typing import Iterator, Tuple

from cog import BaseModel, Input, Path

from classifier import NaiveBayes


class TrainingOutput(BaseModel):
    weights: Path


def _rows(data: bytes) -> Iterator[Tuple[str, str]]:
    """(text, label) rows of a CSV whose header names `text` and `label` columns."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
        raise ValueError(f"the CSV needs `text` and `label` columns, got {reader.fieldnames}")
    for row in reader:
        if row["text"] and row["label"]:
            yield row["text"], row["label"].strip()


def _examples(path: Path) -> Iterator[Tuple[str, str]]:
    """The labelled examples of a CSV, or of a zip of CSVs and `label/*.txt` files."""
    if not zipfile.is_zipfile(path):
        yield from _rows(path.read_bytes())
        return
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".csv"):
                yield from _rows(archive.read(name))
            elif name.endswith(".txt") and "/" in name:
                label = name.rsplit("/", 2)[-2]
                yield archive.read(name).decode("utf-8", "replace"), label


def train(
    examples: Path = Input(
        description="Labelled examples: a CSV with `text` and `label` columns, or a zip "
        "of such CSVs and of `label/*.txt` files"
    ),
    smoothing: float = Input(description="Additive (Laplace) smoothing", default=1.0, ge=0.001),
) -> TrainingOutput:
    rows = list(_examples(examples))
    print(f"training on {len(rows)} examples")
    model = NaiveBayes.fit(rows, alpha=smoothing)
    for label in sorted(model.docs):
        print(f"  {label}: {model.docs[label]} examples")
    out = Path(tempfile.mkdtemp(prefix="text-classifier-")) / "weights.json"
    model.save(out)
    return TrainingOutput(weights=out)
