"""Search engines for `browser.search`: DuckDuckGo (through `ddgs`) and a local folder.

A backend returns `SearchResult`s; the browser turns them into the result page the model
reads. A backend may also own some URLs (the local folder's `file://` documents) and serve
them itself; everything else is fetched over HTTP. Write your own by subclassing
`SearchBackend` and implementing `search` (and `owns`/`fetch` if it serves documents).
"""
from __future__ import annotations

import asyncio
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from agent.tools.browser.page import Page, html_to_page, text_to_page


@dataclass
class SearchResult:
    title: str
    url: str
    snippet: str = ""


class SearchBackend(ABC):
    source: str = "web"  # named in the tool description: `sources=web (default: web)`

    @abstractmethod
    async def search(self, query: str, topn: int) -> list[SearchResult]:
        """At most `topn` results, best first. Raise to report a failure to the model."""

    def owns(self, url: str) -> bool:
        """Whether this backend serves `url` itself (instead of an HTTP fetch)."""
        return False

    async def fetch(self, url: str) -> Page:
        raise NotImplementedError


class DuckDuckGoBackend(SearchBackend):
    """Web search through the `ddgs` package (no API key). Needs internet access."""

    def __init__(self, *, timeout: float = 10.0, region: str = "us-en",
                 safesearch: str = "moderate", backend: str = "auto"):
        self.timeout = timeout
        self.region, self.safesearch, self.backend = region, safesearch, backend

    async def search(self, query: str, topn: int) -> list[SearchResult]:
        return await asyncio.wait_for(asyncio.to_thread(self._search, query, topn),
                                      self.timeout + 5)

    def _search(self, query: str, topn: int) -> list[SearchResult]:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException
        try:
            rows = DDGS(timeout=int(self.timeout)).text(
                query, max_results=topn, region=self.region, safesearch=self.safesearch,
                backend=self.backend)
        except DDGSException as e:
            if "no results" in str(e).lower():
                return []
            raise
        return [SearchResult(title=r.get("title") or r.get("href", ""), url=r.get("href", ""),
                             snippet=r.get("body") or "") for r in rows if r.get("href")]


DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".html", ".htm")
WORD = re.compile(r"\w+")


class LocalFolderBackend(SearchBackend):
    """Searches the text and HTML files under a folder (term counts, title words weigh more).

    Results point at `file://` URLs this backend serves itself, or, with `base_url`, at the
    same relative paths under that URL (for a folder that a web server also serves).
    Nothing outside the folder is read: symbolic links are resolved and followed only when
    they stay inside it, and a document is read up to `max_bytes`.
    """
    source = "local"

    def __init__(self, folder: str | Path, *, base_url: str | None = None,
                 max_bytes: int = 3_000_000):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise ValueError(f"search folder {folder} does not exist or is not a folder")
        self.base_url = base_url.rstrip("/") + "/" if base_url else None
        self.max_bytes = max_bytes

    def _documents(self):
        """The folder's documents as resolved paths inside it (links out are skipped)."""
        found = set()
        for top, _, names in os.walk(self.folder):  # does not descend into linked folders
            for name in names:
                path = self._inside(Path(top, name))
                if path and path.suffix.lower() in DOCUMENT_SUFFIXES:
                    found.add(path)
        return sorted(found)

    def _inside(self, path: Path) -> Path | None:
        """`path` resolved, if it is a file of the folder."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a loop of links
            return None
        return real if real.is_relative_to(self.folder) and real.is_file() else None

    def _url(self, path: Path) -> str:
        rel = path.relative_to(self.folder).as_posix()
        return (self.base_url + quote(rel)) if self.base_url else path.as_uri()

    def _page(self, path: Path, url: str) -> Page:
        # O_NOFOLLOW: a file swapped for a link after the check is not opened.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with open(fd, "rb") as handle:
            raw = handle.read(self.max_bytes).decode("utf-8", errors="replace")
        if path.suffix.lower() in (".html", ".htm"):
            return html_to_page(raw, url)
        first = next((line.strip("# ").strip() for line in raw.splitlines() if line.strip()), "")
        return text_to_page(raw, url, title=first or path.name)

    async def search(self, query: str, topn: int) -> list[SearchResult]:
        return await asyncio.to_thread(self._search, query, topn)

    def _search(self, query: str, topn: int) -> list[SearchResult]:
        terms = [t.lower() for t in WORD.findall(query)]
        scored = []
        for path in self._documents():
            page = self._page(path, self._url(path))
            body, title = page.text.lower(), page.title.lower()
            score = sum(body.count(t) + 5 * title.count(t) for t in terms)
            if score:
                scored.append((-score, str(path), page))
        scored.sort(key=lambda item: item[:2])
        return [SearchResult(title=page.title, url=page.url, snippet=_snippet(page.text, terms))
                for _, _, page in scored[:topn]]

    def owns(self, url: str) -> bool:
        return url.startswith("file://")

    async def fetch(self, url: str) -> Page:
        path = self._inside(Path(unquote(urlparse(url).path)))
        if path is None:
            raise FileNotFoundError(f"{url} is not a document of the search folder")
        return await asyncio.to_thread(self._page, path, url)  # parsing: off the event loop


def _snippet(text: str, terms: list[str], width: int = 200) -> str:
    """The first body line mentioning a query term (else the first body line), cut to width."""
    body = [line.strip() for line in text.split("\n")
            if line.strip() and not line.startswith(("URL: ", "#"))]
    hit = next((line for line in body if any(t in line.lower() for t in terms)), None)
    line = hit or (body[0] if body else "")
    return line if len(line) <= width else line[:width - 3] + "..."
