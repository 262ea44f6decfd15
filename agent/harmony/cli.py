"""`python -m agent harmony render|parse FILE|-`: Harmony interop on the command line.

    render FILE   FILE holds a conversation in openai-harmony's JSON form
                  (`Conversation.to_json()`); prints the prompt token ids for a completion by
                  the assistant, as a JSON list.
    parse FILE    FILE holds a JSON list of completion token ids (without the leading
                  `<|start|>assistant`); prints the parsed messages as a JSON list in
                  openai-harmony's message form. Parse problems go to stderr, one per line.

`-` reads standard input. Bad input gives one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from .messages import Conversation, Role
from .tokenizer import VocabularyError


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _render(args) -> int:
    from .render import Renderer

    conversation = Conversation.from_json(_read(args.file))
    renderer = Renderer(args.templates)
    tokens = renderer.render_conversation_for_completion(
        conversation, Role(args.next_role), auto_drop_analysis=not args.keep_analysis)
    print(json.dumps(tokens))
    return 0


def _parse(args) -> int:
    from .parse import parse_completion

    tokens = json.loads(_read(args.file))
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        raise ValueError("expected a JSON list of integer token ids")
    result = parse_completion(tokens, role=None if args.role == "none" else Role(args.role))
    for error in result.errors:
        print(f"parse error: {error.reason}", file=sys.stderr)
    print(json.dumps([m.to_dict() for m in result.messages], ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent harmony",
                                     description="Harmony format: render and parse token ids.")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="conversation JSON -> prompt token ids (JSON list)")
    render.add_argument("file", help="conversation JSON file, or - for stdin")
    render.add_argument("--next-role", default="assistant", choices=[r.value for r in Role])
    render.add_argument("--keep-analysis", action="store_true",
                        help="keep analysis messages that openai-harmony would drop")
    render.add_argument("--templates", default=None, help="folder of templates overriding prompts/")
    render.set_defaults(run=_render)
    parse = sub.add_parser("parse", help="completion token ids (JSON list) -> messages JSON")
    parse.add_argument("file", help="JSON list of token ids, or - for stdin")
    parse.add_argument("--role", default="assistant",
                       help="role already in the prompt (default assistant; 'none' if the ids "
                            "start with <|start|>)")
    parse.set_defaults(run=_parse)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, ValidationError, VocabularyError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        else:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"harmony {args.command}: {args.file}: {detail}", file=sys.stderr)
        return 2
