"""``python -m vendo.runner serve|openapi`` (docs/design/runtime.md, "Child command line")."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vendo.runner")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="load the model and serve predictions on --fd")
    serve.add_argument("--project", required=True)
    serve.add_argument("--ref", required=True)
    serve.add_argument("--mode", choices=("predict", "train"), default="predict")
    serve.add_argument("--max-concurrency", type=int, default=None)
    serve.add_argument("--fd", type=int, required=True)
    openapi = commands.add_parser("openapi", help="print the model's OpenAPI document")
    openapi.add_argument("--project", required=True)
    openapi.add_argument("--ref", default=None)
    openapi.add_argument("--train-ref", default=None)
    return parser


def _openapi(project: str, ref: Optional[str], train_ref: Optional[str]) -> int:
    from vendo.schema.openapi import openapi_document

    from .channel import error_text
    from .loader import load, register_cog

    if ref is None and train_ref is None:
        print("error: give --ref, --train-ref or both", file=sys.stderr)
        return 2
    # Model code may print while it is imported: keep stdout for the document alone.
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        os.chdir(project)
        sys.path.insert(0, os.getcwd())
        register_cog()
        predict = load(os.getcwd(), ref, "predict").info if ref else None
        train = load(os.getcwd(), train_ref, "train").info if train_ref else None
        document = openapi_document(predict, train)
    except BaseException as exc:
        sys.stdout.flush()
        print(f"error: {error_text(exc)}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    os.dup2(stdout, 1)
    for info in (predict, train):
        for warning in info.warnings if info else ():
            print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "openapi":
        return _openapi(args.project, args.ref, args.train_ref)
    from .serve import serve

    return serve(args.project, args.ref, args.mode, args.max_concurrency, args.fd)
