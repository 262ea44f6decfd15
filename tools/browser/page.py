"""Pages as the model sees them: HTML or plain text -> numbered lines with `【id†text】` links.

The format follows gpt-oss's reference browser (openai/gpt-oss, gpt_oss/tools/simple_browser):
markdown-ish text (headings `#`, list items `  * `, images `[Image N: alt]`), links replaced by
`【{id}†{text}】` (same domain) or `【{id}†{text}†{domain}】`, lines wrapped at 80 characters,
`【`/`】` in page text replaced by `〖`/`〗` so a page cannot forge a link or a citation.
Tables keep their rows, one row per line with ` | ` between cells.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlparse

from lxml import etree

SKIPPED = {"script", "style", "noscript", "template", "svg", "math", "head", "iframe",
           "object", "canvas", "select", "textarea"}
BLOCKS = {"p", "div", "section", "article", "header", "footer", "nav", "main", "aside",
          "blockquote", "pre", "ul", "ol", "table", "dl", "dt", "dd", "figure", "figcaption",
          "form", "address", "details", "summary", "hr", "fieldset", "caption"}
SPECIAL = str.maketrans({"【": "〖", "】": "〗", "\u200b": None})
# Bounds that keep the text linear in the page: deeper lists are shown at this depth, links
# past the count or the URL length stay plain text, and a shown domain is cut (a long <base>
# or page URL would otherwise be repeated in every relative link).
MAX_LIST_DEPTH = 8
MAX_LINKS = 10_000
MAX_URL = 2048
MAX_DOMAIN = 80


@dataclass
class Snippet:
    """A quotable passage: a search result, or a `find` match (with the line to jump to)."""
    url: str
    text: str
    title: str
    line_idx: int | None = None


@dataclass
class Page:
    url: str
    title: str
    text: str
    urls: dict[str, str] = field(default_factory=dict)  # link id -> absolute URL
    snippets: dict[str, Snippet] | None = None  # set on search and find result pages
    cite_url: str | None = None  # what a citation of this page links to, if not `url`
    _lines: list[str] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        data = {"url": self.url, "title": self.title, "text": self.text, "urls": self.urls,
                "cite_url": self.cite_url}
        if self.snippets is not None:
            data["snippets"] = {k: vars(v) for k, v in self.snippets.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Page":
        snippets = data.get("snippets")
        return cls(url=data["url"], title=data["title"], text=data["text"],
                   urls=dict(data.get("urls", {})), cite_url=data.get("cite_url"),
                   snippets=None if snippets is None else
                   {k: Snippet(**v) for k, v in snippets.items()})

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = wrap_lines(self.text)
        return self._lines


# textwrap's whitespace: a run of it, or of anything else, is one chunk.
CHUNK = re.compile(r"[\t\n\x0b\x0c\r ]+|[^\t\n\x0b\x0c\r ]+")


def wrap_lines(text: str, width: int = 80) -> list[str]:
    """Splits into lines of at most `width` characters, keeping empty lines and spacing.

    textwrap.wrap(replace_whitespace=False, drop_whitespace=False) without its quadratic
    cases: tabs stay one character each (expanding them made 1 MB of tabs 8 MB of one chunk),
    and a chunk longer than a line is cut by position instead of slicing off its rest again
    for every line (1 MB of tabs took 11 to 46 s). Each line is a slice of the input, so the
    work is linear. Unlike textwrap, words are not broken after hyphens."""
    lines: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        start = 0  # where the line being filled begins
        for chunk in CHUNK.finditer(line):
            begin, end = chunk.span()
            if end - start <= width:
                continue  # fits on the current line
            if end - begin <= width:  # fits on a line of its own: starts the next
                lines.append(line[start:begin])
                start = begin
                continue
            while end - start > width:  # longer than a line: fill lines with it
                lines.append(line[start:start + width])
                start += width
        lines.append(line[start:])
    return lines


def domain_of(url: str) -> str:
    return urlparse(url if "://" in url else "http://" + url).netloc


class _TextBuilder:
    """One pass over the HTML, writing markdown-ish text and collecting links: the target of
    libxml2's HTML parser (linear in the input however broken it is; Python's html.parser
    is quadratic on unterminated tags such as `<a<a<a...`)."""

    def __init__(self, url: str):
        self.base = url
        self.has_base = False
        self.domain = domain_of(url) if url else ""
        self.out: list[str] = []
        self.urls: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        self.title_parts: list[str] | None = None
        self.title = ""
        self.skip = 0
        self.pre = 0
        self.lists: list[list] = []  # [kind, next number]
        self.link: list | None = None  # [href, text parts, has text]
        self.cells = 0
        self.images = 0
        self._tail = ""

    # -- writing --------------------------------------------------------------------------
    def write(self, text: str, raw: bool = False, is_text: bool = True) -> None:
        """raw: keep leading spaces (list indentation); is_text=False: an image marker,
        which does not make a link worth showing."""
        if not text:
            return
        if self.link is not None:
            self.link[1].append(text)
            self.link[2] = self.link[2] or (is_text and bool(text.strip()))
            return
        if not raw and not self.pre and self._tail.endswith("\n"):
            text = text.lstrip(" ")  # no stray space at the start of a line
            if not text:
                return
        self.out.append(text)
        self._tail = (self._tail + text)[-2:]

    def newline(self, count: int = 1) -> None:
        """Ends the current line, leaving at least `count` line breaks (2: an empty line)."""
        if self.link is not None or not self.out:
            return
        have = len(self._tail) - len(self._tail.rstrip("\n"))
        if have < count:
            self.out.append("\n" * (count - have))
            self._tail = (self._tail + "\n" * (count - have))[-2:]

    # -- parser callbacks -----------------------------------------------------------------
    def start(self, tag, attrs):
        if tag == "title" and self.title_parts is None:
            self.title_parts = []
            self.skip += 1
            return
        if tag == "base" and attrs.get("href") and not self.has_base:
            self.has_base = True  # only the first counts (each would lengthen the next)
            self.base = urljoin(self.base, attrs["href"])
        if tag in SKIPPED:
            self.skip += 1
            return
        if self.skip:
            return
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.newline(2)
            if self.link is None:  # a heading inside a link is just the link's text
                self.write("#" * int(tag[1]) + " ")
        elif tag in ("ul", "ol"):
            self.lists.append([tag, 1])
            self.newline()
        elif tag == "li":
            kind, number = self.lists[-1] if self.lists else ("ul", 1)
            indent = "  " * min(len(self.lists or [0]), MAX_LIST_DEPTH)
            self.newline()
            self.write(f"{indent}* " if kind == "ul" else f"{indent}{number}. ", raw=True)
            if self.lists:
                self.lists[-1][1] += 1
        elif tag == "tr":
            self.newline()
            self.cells = 0
        elif tag in ("td", "th"):
            if self.cells:
                self.write(" | ")
            self.cells += 1
        elif tag == "br":
            self.newline()
        elif tag == "img":
            alt = (attrs.get("alt") or attrs.get("title") or "").strip()
            self.write(f"[Image {self.images}: {alt}]" if alt else f"[Image {self.images}]",
                       is_text=False)
            self.images += 1
        elif tag == "a" and attrs.get("href") is not None and self.link is None:
            self.link = [attrs["href"], [], False]
        elif tag == "sup":
            self.write("^{")
        elif tag == "sub":
            self.write("_{")
        elif tag == "pre":
            self.pre += 1
            self.newline(2)
        elif tag in BLOCKS:
            self.newline(2)

    def end(self, tag):
        if tag == "title" and self.title_parts is not None and not self.title:
            self.title = " ".join("".join(self.title_parts).split())
            self.skip = max(0, self.skip - 1)
            return
        if tag in SKIPPED:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag == "a" and self.link is not None:
            self._close_link()
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.newline(2)
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self.newline()
        elif tag in ("sup", "sub"):
            self.write("}")
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self.newline(2)
        elif tag in BLOCKS or tag == "tr":
            self.newline(1 if tag == "tr" else 2)

    def data(self, data):
        if self.title_parts is not None and not self.title and self.skip:
            self.title_parts.append(data)
            return
        if self.skip:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
        self.write(data.translate(SPECIAL))

    # -- links ----------------------------------------------------------------------------
    def _close_link(self):
        href, parts, has_text = self.link
        self.link = None
        text = " ".join("".join(parts).split())
        if not has_text or href.startswith(("mailto:", "javascript:", "tel:", "data:")) \
                or href.startswith("#"):
            self.write(text)  # image-only links and in-page anchors stay plain text
            return
        if len(self.base) + len(href) > MAX_URL:  # joining is O(base): not once per link
            self.write(text)
            return
        try:
            target = urljoin(self.base, href.strip())
            parsed = urlparse(target)
        except ValueError:
            self.write(text)
            return
        domain = parsed.netloc
        if not domain and parsed.scheme != "file":  # file: local search documents
            self.write(text)
            return
        link_id = self._ids.get(target)
        if link_id is None:
            if len(self.urls) >= MAX_LINKS:
                self.write(text)
                return
            link_id = self._ids[target] = str(len(self.urls))
            self.urls[link_id] = target
        text = text.replace("†", "‡")
        suffix = "" if domain == self.domain else f"†{domain[:MAX_DOMAIN]}"
        self.write(f"【{link_id}†{text}{suffix}】")

    def close(self) -> None:  # the parser's end of input
        pass

    def text(self) -> str:
        if self.link is not None:
            self._close_link()
        raw = "".join(self.out)
        lines = [line.rstrip() for line in raw.split("\n")]
        text = "\n".join(line if line.strip() else "" for line in lines)
        text = re.sub(r"\n{3,}", "\n\n", text)  # at most one empty line between blocks
        return text.strip("\n")


def valid_text(text: str) -> str:
    """`text` without lone surrogates (a JSON "\\ud800" escape in a search result makes one;
    they cannot be encoded, so the parser and the tokenizer would raise)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def html_to_page(html: str, url: str, title: str | None = None,
                 display_url: bool = True) -> Page:
    """Converts an HTML document; `display_url` puts a `URL:` line on top as gpt-oss does."""
    builder = _TextBuilder(url)
    parser = etree.HTMLParser(target=builder, recover=True, no_network=True)
    parser.feed(valid_text(html))
    parser.close()
    text = builder.text()
    final_title = title or builder.title or (domain_of(url) if url else "")
    if display_url:
        text = f"\nURL: {url}\n{text}"
    return Page(url=url, title=final_title, text=text, urls=builder.urls)


def text_to_page(text: str, url: str, title: str | None = None) -> Page:
    """A plain-text document (text/plain, JSON, source code) shown as it is."""
    text = valid_text(text).replace("\r\n", "\n").replace("\r", "\n").translate(SPECIAL)
    name = title or urlparse(url).path.rsplit("/", 1)[-1] or domain_of(url)
    return Page(url=url, title=name, text=f"\nURL: {url}\n{text}")


PARTIAL_INITIAL_LINK = re.compile(r"^[^【】]*】")
PARTIAL_FINAL_LINK = re.compile(r"【\d*(?:†(?P<content>[^†】]*)(?:†[^†】]*)?)?$")
LINK = re.compile(r"【\d+†(?P<content>[^†】]+)(?:†[^†】]+)?】")


def strip_links(text: str) -> str:
    """`【3†Example†example.org】` -> `Example`, so `find` matches what a reader sees."""
    text = PARTIAL_INITIAL_LINK.sub("", text)
    text = PARTIAL_FINAL_LINK.sub(lambda m: m.group("content") or "", text)
    return LINK.sub(lambda m: m.group("content"), text)


def find_in_page(pattern: str, page: Page, max_results: int = 50, context_lines: int = 4) -> Page:
    """The `find` result page: each case-insensitive match with the lines that follow it."""
    pattern = pattern.lower()
    lines = strip_links("\n".join(page.lines)).split("\n")
    chunks: list[str] = []
    snippets: dict[str, Snippet] = {}
    i = 0
    while i < len(lines) and len(chunks) < max_results:
        if pattern not in lines[i].lower():
            i += 1
            continue
        shown = "\n".join(lines[i:i + context_lines])
        n = len(chunks)
        chunks.append(f"# 【{n}†match at L{i}】\n{shown}")
        snippets[str(n)] = Snippet(url=page.url, text=shown, title=f"#{n}", line_idx=i)
        i += context_lines
    text = "\n\n".join(chunks) if chunks else f"No `find` results for pattern: `{pattern}`"
    return Page(url=f"{page.url}/find?pattern={quote(pattern)}",
                title=f"Find results for text: `{pattern}` in `{page.title}`", text=text,
                urls={k: page.url for k in snippets}, snippets=snippets, cite_url=page.url)
