"""Citations in the model's answer: `【{cursor}†L{start}(-L{end})?】` -> links to sources.

gpt-oss cites browser pages by cursor and line range. The cursor stack maps each cursor to
the page's URL; a citation becomes ` ([domain](url)) ` in the text plus a `url_citation`
annotation (character offsets into the new text), as in gpt-oss's reference browser.
Citations of unknown cursors (or of search pages, which have no URL) stay as written.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

CITATION = re.compile(r"【(?P<cursor>\d+)†(?P<content>[^†】]+)(?:†[^†】]+)?】")
PARTIAL_FINAL = re.compile(r"【\d*(?:†(?P<content>[^†】]*)(?:†[^†】]*)?)?$")
LINES = re.compile(r"L(\d+)(?:\s*-\s*L?(\d+))?")


def _domain(url: str) -> str:
    parts = unquote(url).split("/")
    return parts[2] if len(parts) > 2 else url


def normalize_citations(text: str, cursor_urls: list[str], hide_partial_citations: bool = False
                        ) -> tuple[str, list[dict[str, Any]], bool]:
    """(new text, annotations, whether the text ends inside an unfinished citation)."""
    has_partial = PARTIAL_FINAL.search(text) is not None
    if hide_partial_citations and has_partial:
        text = PARTIAL_FINAL.sub("", text)
    out: list[str] = []
    annotations: list[dict[str, Any]] = []
    length, last = 0, 0
    for match in CITATION.finditer(text):
        before = text[last:match.start()]
        out.append(before)
        length += len(before)
        cursor = int(match.group("cursor"))
        url = cursor_urls[cursor] if cursor < len(cursor_urls) else ""
        if url:
            domain = _domain(url)
            replacement = f" ([{domain}]({url})) "
            annotation = {"type": "url_citation", "start_index": length,
                          "end_index": length + len(replacement), "title": domain, "url": url,
                          "cursor": cursor}
            lines = LINES.fullmatch(match.group("content").strip())
            if lines:
                annotation["lines"] = [int(lines.group(1)), int(lines.group(2) or lines.group(1))]
            annotations.append(annotation)
        else:
            replacement = match.group(0)
        out.append(replacement)
        length += len(replacement)
        last = match.end()
    out.append(text[last:])
    return "".join(out), annotations, has_partial
