"""The `browser` built-in: `browser.search`, `browser.open`, `browser.find`, with cursors.

Every page the model sees gets the next cursor number, shown as `[cursor]` before the page
title; the model cites lines as `【cursor†L9-L11】`, and `normalize_citations` turns those into
links to the page's URL. Display format and behaviour follow gpt-oss's reference browser.
"""
from __future__ import annotations

import asyncio
import html
from typing import Any, Callable, Union
from urllib.parse import unquote

import pydantic

from agent.tools.base import (InvalidArguments, Tool, ToolError, ToolResult,
                              format_validation_error, invalid_arguments_result,
                              parse_json_arguments)
from agent.tools.browser.backends import DuckDuckGoBackend, SearchBackend, SearchResult
from agent.tools.browser.citations import normalize_citations
from agent.tools.browser.fetch import Document, FetchError, Fetcher
from agent.tools.browser.page import Page, find_in_page, html_to_page, text_to_page

VIEW_SOURCE = "view-source:"
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


class SearchArgs(pydantic.BaseModel):
    query: str
    topn: int = 10
    source: str | None = None


class OpenArgs(pydantic.BaseModel):
    id: Union[int, str] = -1
    cursor: int = -1
    loc: int = -1
    num_lines: int = -1
    view_source: bool = False
    source: str | None = None


class FindArgs(pydantic.BaseModel):
    pattern: str
    cursor: int = -1


ARGUMENTS = {"search": SearchArgs, "open": OpenArgs, "find": FindArgs}


def truncate(text: str, limit: int = 1024) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class BrowserTool(Tool):
    namespace = "browser"
    name = "browser"

    def __init__(self, backend: SearchBackend | None = None, *, fetcher: Fetcher | None = None,
                 allow_private: bool | list[str] = False, view_tokens: int = 1024,
                 max_search_results: int = 20, timeout: float | None = 60.0,
                 layout_timeout: float = 20.0):
        """allow_private: let `open` reach loopback/private/link-local hosts (off: SSRF guard);
        a list of networks allows only those (see Fetcher).
        view_tokens: how much of a page one `open` shows when `num_lines` is not given.
        layout_timeout: seconds for turning a fetched page into lines."""
        self.backend = backend or DuckDuckGoBackend()
        self.fetcher = fetcher or Fetcher(allow_private=allow_private)
        self.view_tokens = view_tokens
        self.max_search_results = max_search_results
        self.timeout = timeout
        self.layout_timeout = layout_timeout
        self.pages: list[Page] = []          # index = cursor
        self._cache: dict[str, Page] = {}    # url -> page, for links opened again

    # -- interface ------------------------------------------------------------------------
    def recipients(self) -> list[str]:
        return ["browser.search", "browser.open", "browser.find"]

    @property
    def description(self) -> str:
        from agent.harmony.messages import BROWSER_DESCRIPTION
        head = BROWSER_DESCRIPTION.rsplit("\n", 1)[0]
        source = self.backend.source
        return f"{head}\nsources={source} (default: {source})"

    def namespace_config(self):
        from agent.harmony.messages import ToolNamespaceConfig
        config = ToolNamespaceConfig.browser()
        return config.model_copy(update={"description": self.description})

    async def call(self, recipient: str, arguments: str) -> ToolResult:
        function = recipient.rsplit(".", 1)[-1]
        if function not in ARGUMENTS:
            return ToolResult(f"Error: unknown function {recipient!r}; use browser.search, "
                              "browser.open or browser.find.", error=True)
        try:
            raw = parse_json_arguments(recipient, arguments)
            try:
                args = ARGUMENTS[function].model_validate(raw)
            except pydantic.ValidationError as e:
                raise InvalidArguments(format_validation_error(recipient, e)) from None
            text = await getattr(self, function)(args)
        except InvalidArguments as e:
            return invalid_arguments_result(e)
        except ToolError as e:
            return ToolResult(str(e), error=True)
        page = self.pages[-1]
        return ToolResult(text, data={"cursor": len(self.pages) - 1, "url": page.url,
                                      "title": page.title})

    # -- the three functions --------------------------------------------------------------
    async def search(self, args: SearchArgs) -> str:
        topn = max(1, min(args.topn, self.max_search_results))
        try:
            results = await self.backend.search(args.query, topn)
        except Exception as e:
            raise ToolError(f"Error during search for `{args.query}`: "
                            f"{truncate(str(e) or type(e).__name__)}") from None
        return self._push_and_show(search_results_page(args.query, results[:topn]), 0)

    async def open(self, args: OpenArgs) -> str:
        target, loc = args.id, args.loc
        if isinstance(target, str) and target.strip().lstrip("-").isdigit():
            target = int(target)  # "3" is a link id, not a URL
        if isinstance(target, str):
            url = target.strip()
            if "://" not in url and not url.startswith(VIEW_SOURCE) and "." in url.split("/")[0]:
                url = "https://" + url  # "example.org/page": the model left out the scheme
            page = await self._load(VIEW_SOURCE + url if args.view_source else url, fresh=True)
        else:
            current = self._page_at(args.cursor)
            if target >= 0:
                url = current.urls.get(str(target))
                if url is None:
                    raise ToolError(f"Invalid link id `{target}`.")
                snippet = (current.snippets or {}).get(str(target))
                if loc < 0 and snippet is not None and snippet.line_idx is not None:
                    loc = snippet.line_idx - 4 if snippet.line_idx > 4 else snippet.line_idx
                page = await self._load(VIEW_SOURCE + url if args.view_source else url)
            elif args.view_source:
                page = await self._load(VIEW_SOURCE + current.url)
            else:
                page = current  # scrolling: the same page under a new cursor
        return self._push_and_show(page, max(loc, 0), args.num_lines)

    async def find(self, args: FindArgs) -> str:
        page = self._page_at(args.cursor)
        if page.snippets is not None:
            raise ToolError("Cannot run `find` on search results page or find results page")
        return self._push_and_show(find_in_page(args.pattern, page), 0)

    # -- pages and cursors ----------------------------------------------------------------
    def _page_at(self, cursor: int) -> Page:
        if not self.pages:
            raise ToolError("No pages to access!")
        if cursor == -1:
            return self.pages[-1]
        if not 0 <= cursor < len(self.pages):
            raise ToolError(f"Cursor `{cursor}` is out of range. "
                            f"Available cursor indices: [0 - {len(self.pages) - 1}].")
        return self.pages[cursor]

    def _push_and_show(self, page: Page, loc: int, num_lines: int = -1) -> str:
        total = len(page.lines)
        if loc >= total:
            raise ToolError(f"Invalid location parameter: `{loc}`. "
                            f"Cannot exceed page maximum of {total - 1}.")
        self.pages.append(page)
        return self.render(len(self.pages) - 1, loc, num_lines)

    def render(self, cursor: int, loc: int = 0, num_lines: int = -1) -> str:
        """The display of page `cursor` from line `loc`: header, scrollbar, numbered lines."""
        page = self.pages[cursor]
        lines = page.lines
        end = self._end_line(lines, loc, num_lines)
        body = "\n".join(f"L{i}: {lines[i]}" for i in range(loc, end))
        header = page.title
        if page.url:
            header += f" ({truncate(unquote(page.url))})"
        return (f"[{cursor}] {header}\n**viewing lines [{loc} - {end - 1}] of {len(lines) - 1}**"
                f"\n\n{body}")

    def _end_line(self, lines: list[str], loc: int, num_lines: int) -> int:
        if num_lines > 0:
            return min(loc + num_lines, len(lines))
        # Show about `view_tokens` tokens, rounded up to whole lines. Only the lines within
        # what _chars_for_tokens looks at are numbered: a page of 600,000 lines is not.
        window, end, size = (self.view_tokens + 1) * 32, loc, 0
        while end < len(lines) and size <= window:
            size += len(f"L{end}: {lines[end]}") + 1
            end += 1
        shown = "\n".join(f"L{i}: {lines[i]}" for i in range(loc, end))
        chars = _chars_for_tokens(shown, self.view_tokens)
        if end == len(lines) and chars >= len(shown):
            return len(lines)
        return min(loc + shown[:chars].count("\n") + 1, len(lines))

    async def _load(self, url: str, fresh: bool = False) -> Page:
        if not fresh and url in self._cache:
            return self._cache[url]
        source = url.startswith(VIEW_SOURCE)
        real = url[len(VIEW_SOURCE):] if source else url
        try:
            if self.backend.owns(real):
                fetched = await self.backend.fetch(real)
                page = await self._lay_out(lambda: fetched)
            else:
                doc = await self.fetcher.fetch(real)
                page = await self._lay_out(lambda: document_to_page(doc, source))
        except (FetchError, OSError, ToolError, ValueError) as e:
            raise ToolError(f"Error fetching URL `{truncate(real)}`: "
                            f"{truncate(str(e) or type(e).__name__)}") from None
        self._cache[url] = page
        return page

    async def _lay_out(self, make: Callable[[], Page]) -> Page:
        """The page from `make` with its lines wrapped, in a worker thread: a page of
        megabytes takes a while to parse and wrap, and the event loop (the server's other
        requests, /health) must not wait for it."""
        def build() -> Page:
            page = make()
            _ = page.lines  # wrapped here, not on the event loop at display time
            return page
        try:
            return await asyncio.wait_for(asyncio.to_thread(build), self.layout_timeout)
        except asyncio.TimeoutError:  # the thread finishes on its own; its page is dropped
            raise ToolError(f"laying out the page took more than {self.layout_timeout:g} "
                            "seconds") from None

    def normalize_citations(self, text: str, hide_partial_citations: bool = False):
        """`【3†L9-L11】` -> ` ([domain](url)) ` plus annotations; see citations.py."""
        urls = [p.cite_url or p.url for p in self.pages]  # a find page cites the page searched
        return normalize_citations(text, urls, hide_partial_citations)

    def state(self) -> dict[str, Any]:
        """The cursor stack as JSON-ready data (pages with their text and links)."""
        return {"pages": [page.to_dict() for page in self.pages]}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restores `state()`: cursors keep their numbers, citations keep resolving."""
        self.pages = [Page.from_dict(d) for d in state.get("pages", [])]
        self._cache = {p.url: p for p in self.pages if p.url and p.snippets is None}


def search_results_page(query: str, results: list[SearchResult]) -> Page:
    """The search display gpt-oss knows: a `# Search Results` list of links with summaries."""
    items = "".join(f"<li><a href='{html.escape(r.url, quote=True)}'>{html.escape(r.title)}"
                    f"</a> {html.escape(r.snippet)}</li>" for r in results)
    page = html_to_page(f"<html><body>\n<h1>Search Results</h1>\n<ul>\n{items}\n</ul>\n"
                        "</body></html>", url="", title=query)
    if not results:
        page.text += "\nNo results found."
    page.snippets = {}  # marks a result page: `find` refuses it
    return page


def document_to_page(doc: Document, view_source: bool = False) -> Page:
    if view_source:
        page = text_to_page(doc.text, VIEW_SOURCE + doc.url, title=f"Source of {doc.url}")
    elif doc.content_type in HTML_TYPES or (not doc.content_type and "<html" in doc.text[:2000].lower()):
        page = html_to_page(doc.text, doc.url)
    elif doc.content_type.startswith(TEXT_TYPES) or not doc.content_type:
        page = text_to_page(doc.text, doc.url)
    else:
        raise ToolError(f"cannot display content of type {doc.content_type}")
    if doc.truncated:
        page.text += "\n\n[The page was cut short: it is larger than the browser's size limit.]"
    return page


_ENCODING = None


def _chars_for_tokens(text: str, tokens: int) -> int:
    """How many characters of `text` the first `tokens` o200k tokens cover."""
    global _ENCODING
    if len(text) <= tokens:  # at least one character per token
        return len(text)
    window = text[:(tokens + 1) * 32]  # no token is longer than 32 characters here
    try:
        if _ENCODING is None:
            from agent.harmony.tokenizer import get_encoding
            _ENCODING = get_encoding()
        ids = _ENCODING.encode_ordinary(window)
    except Exception:
        return tokens * 4  # no vocabulary: about four characters per token
    if len(ids) <= tokens:
        return len(window)
    return len(_ENCODING.decode(ids[:tokens]))
