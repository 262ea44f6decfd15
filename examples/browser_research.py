"""The browser tool: search, open pages, answer with citations.

    python examples/browser_research.py "question" [--docs FOLDER] [--model PATH]

Without --docs the browser searches the web (DuckDuckGo); with --docs it searches the text
and HTML files in a local folder instead. Citations such as 【1†L3】 in the answer are
resolved to the pages they cite.
"""
from __future__ import annotations

import argparse

from agent import Agent
from agent.tools.browser import BrowserTool
from agent.tools.browser.backends import LocalFolderBackend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("question", nargs="?", default="Why do sea otters hold hands?")
    parser.add_argument("--docs", help="search this folder instead of the web")
    parser.add_argument("--model", help="checkpoint folder (default: the embedded model)")
    args = parser.parse_args(argv)
    browser = BrowserTool(LocalFolderBackend(args.docs)) if args.docs else BrowserTool()
    with Agent(args.model, tools=[browser], effort="medium") as agent:
        result = agent.run(args.question)
    for call in result.tool_calls:
        print(f"[{call.recipient}] {call.input}")
    print(result.final)
    for citation in result.citations:
        print(f"  {citation.marker} {citation.title or ''} {citation.url or ''}".rstrip())
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
