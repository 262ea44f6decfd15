"""The browser against a real HTTP server on 127.0.0.1 and a local search backend."""
from __future__ import annotations

import asyncio
import json
import re

import pytest

from agent.tools.browser import BrowserTool, Fetcher, LocalFolderBackend, html_to_page
from agent.tools.browser.page import wrap_lines


def run(coro):
    return asyncio.run(coro)


def call(browser, function, **args):
    return run(browser.call(f"browser.{function}", json.dumps(args)))


def shown_lines(text):
    """{line number: text} of a browser display."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^L(\d+): (.*)$", text, re.M)}


@pytest.fixture
def browser(docs, web):
    return BrowserTool(LocalFolderBackend(docs), allow_private=True)


def test_open_by_url_shows_cursor_header_scrollbar_and_numbered_lines(browser, web):
    result = call(browser, "open", id=f"{web.base}/index.html")
    assert not result.error
    head, scrollbar = result.text.split("\n")[:2]
    assert head == f"[0] Fixture index ({web.base}/index.html)"
    assert re.fullmatch(r"\*\*viewing lines \[0 - (\d+)\] of \1\*\*", scrollbar)
    lines = shown_lines(result.text)
    assert lines[1] == f"URL: {web.base}/index.html"
    assert lines[2] == "# Welcome to the fixture site"
    assert "## Facts" in lines.values()
    assert "  * The capital of Freedonia is Fredville." in lines.values()
    body = result.text
    assert "【0†table page】" in body and "【1†long page】" in body
    assert "【2†example site†example.org】" in body  # other domains are named
    assert "do not show" not in body and "color: red" not in body  # script/style dropped
    assert "Back to top" in body and "【3†" not in body  # in-page anchors are not links
    assert "〖9†L1〗" in body and "【9†L1】" not in body  # a page cannot forge citations
    assert result.data["cursor"] == 0


def test_open_link_id_then_scroll_then_find_then_open_match(browser, web):
    call(browser, "open", id=f"{web.base}/index.html")
    long = call(browser, "open", id=1)  # the "long page" link
    assert long.text.startswith(f"[1] Long page ({web.base}/long.html)")
    total = int(re.search(r"of (\d+)\*\*", long.text).group(1))
    first_view = shown_lines(long.text)
    assert 20 < len(first_view) < total  # a window of about 1024 tokens, not the whole page

    scrolled = call(browser, "open", loc=100, num_lines=5)  # scroll the current page
    assert scrolled.text.startswith("[2] Long page")
    assert "**viewing lines [100 - 104] of" in scrolled.text
    assert sorted(shown_lines(scrolled.text)) == [100, 101, 102, 103, 104]

    found = call(browser, "find", pattern="NEEDLE")  # case-insensitive
    assert found.text.startswith("[3] Find results for text: `needle` in `Long page`")
    match_line = int(re.search(r"【0†match at L(\d+)】", found.text).group(1))
    assert match_line == total  # the needle is the last line

    opened = call(browser, "open", id=0)  # follow the match back into the page
    lines = shown_lines(opened.text)
    assert opened.text.startswith("[4] Long page")
    assert min(lines) == match_line - 4 and "The needle is hidden here." in lines.values()

    old = call(browser, "open", cursor=0, id=0)  # a link on an earlier cursor's page
    assert "[5] Planets" in old.text


def test_find_without_matches_and_on_result_pages(browser, web):
    call(browser, "open", id=f"{web.base}/table.html")
    none = call(browser, "find", pattern="saturn")
    assert "No `find` results for pattern: `saturn`" in none.text
    again = call(browser, "find", pattern="mars")
    assert again.error and "Cannot run `find` on search results page or find results page" in again.text
    ok = call(browser, "find", pattern="mars", cursor=0)
    assert "【0†match at L5】" in ok.text


def test_tables_lists_and_charsets(browser, web):
    table = call(browser, "open", id=f"{web.base}/table.html").text
    assert "Planet | Moons" in table and "Mars | 2" in table and "Jupiter | 95" in table
    assert "  1. first item" in table and "  2. second item" in table
    latin = call(browser, "open", id=f"{web.base}/latin1.html").text
    assert "[1] Café" in latin and "Crème brûlée à Zürich" in latin
    meta = call(browser, "open", id=f"{web.base}/meta-charset.html").text
    assert "\u201cSmart quotes\u201d \u2013 and \u20ac5" in meta
    plain = call(browser, "open", id=f"{web.base}/plain.txt").text
    assert "line two with Fredville" in plain


def test_errors_go_back_to_the_model(browser, web):
    missing = call(browser, "open", id=f"{web.base}/missing")
    assert missing.error and "HTTP 404" in missing.text and f"{web.base}/missing" in missing.text
    image = call(browser, "open", id=f"{web.base}/image.png")
    assert image.error and "image/png" in image.text
    loop = call(browser, "open", id=f"{web.base}/redirect-loop")
    assert loop.error and "too many redirects" in loop.text
    to_file = call(browser, "open", id=f"{web.base}/redirect-file")
    assert to_file.error and "only http and https" in to_file.text
    assert call(browser, "find", pattern="x").text == "No pages to access!"
    redirected = call(browser, "open", id=f"{web.base}/redirect")
    assert redirected.text.startswith(f"[0] Planets ({web.base}/table.html)")
    assert call(browser, "open", id=7).text == "Invalid link id `7`."
    bad_loc = call(browser, "open", loc=5000)
    assert bad_loc.text.startswith("Invalid location parameter: `5000`.")
    assert len(browser.pages) == 1  # failures do not push cursors
    assert call(browser, "open", cursor=9).text.startswith("Cursor `9` is out of range.")
    assert "not valid JSON" in run(browser.call("browser.open", "{id: 1")).text
    assert "pattern: Field required" in run(browser.call("browser.find", "{}")).text


def test_size_and_time_limits(docs, web):
    browser = BrowserTool(LocalFolderBackend(docs), fetcher=Fetcher(
        allow_private=True, max_bytes=200_000))
    huge = call(browser, "open", id=f"{web.base}/huge")  # 64 MB offered, 200 kB read
    assert not huge.error and "cut short" in "\n".join(browser.pages[-1].lines[-3:])
    assert 190_000 < len(browser.pages[-1].text) < 210_000
    browser.fetcher.timeout = 1.0
    for slow in ("/slow", "/drip"):  # no answer / a byte at a time: the total deadline holds
        result = call(browser, "open", id=f"{web.base}{slow}")
        assert result.error and "timed out after 1 seconds" in result.text


def test_private_addresses_are_refused_by_default(docs, web):
    browser = BrowserTool(LocalFolderBackend(docs))  # allow_private not given
    hits = len(web.hits)
    for url in (f"{web.base}/index.html", "http://localhost:1/", "http://10.0.0.1/",
                "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
                "http://[::ffff:127.0.0.1]/"):
        result = call(browser, "open", id=url)
        assert result.error and "refusing to fetch" in result.text, url
    assert len(web.hits) == hits  # the server never saw a request
    assert "only http and https" in call(browser, "open", id="ftp://example.org/x").text
    no_scheme = call(browser, "open", id="127.0.0.1/index.html")  # https:// is assumed
    assert "Error fetching URL `https://127.0.0.1/index.html`: refusing" in no_scheme.text


def test_every_redirect_hop_is_checked(docs, web):
    browser = BrowserTool(LocalFolderBackend(docs), allow_private=["127.0.0.1"])
    assert not call(browser, "open", id=f"{web.base}/redirect").error  # allowed network
    bounced = call(browser, "open", id=f"{web.base}/redirect-metadata")
    assert bounced.error and "refusing to fetch 169.254.169.254" in bounced.text
    assert "refusing" in call(browser, "open", id="http://[::1]/").text  # not in the list


def test_search_with_local_folder_backend_and_open_result(docs):
    browser = BrowserTool(LocalFolderBackend(docs))
    result = call(browser, "search", query="Fredville capital")
    assert result.text.startswith("[0] Fredville capital\n**viewing lines")
    lines = shown_lines(result.text)
    assert lines[2] == "# Search Results"
    items = [line for line in lines.values() if line.startswith("  * ")]
    assert items[0].startswith("  * 【0†Freedonia】 ") and "capital is Fredville" in items[0]
    assert any("Rivers of Freedonia" in line for line in items)
    assert not any("pasta" in line for line in lines.values())
    opened = call(browser, "open", id=0)
    assert opened.text.startswith("[1] Freedonia (file://")
    assert "Its capital is Fredville." in opened.text
    outside = call(browser, "open", id="file:///etc/passwd")
    assert outside.error and "not a document of the search folder" in outside.text
    assert "No results found." in call(browser, "search", query="zeppelin").text


def test_search_backend_pointing_at_http_urls(web, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html><head><title>Fixture index</title></head>"
                                         "<body>Fredville facts</body></html>")
    browser = BrowserTool(LocalFolderBackend(tmp_path / "site", base_url=web.base),
                          allow_private=True)
    call(browser, "search", query="Fredville")
    opened = call(browser, "open", id=0)
    assert opened.text.startswith(f"[1] Fixture index ({web.base}/index.html)")
    assert "Welcome to the fixture site" in opened.text  # fetched from the server


def test_citations_become_url_annotations(browser, web):
    call(browser, "open", id=f"{web.base}/index.html")
    call(browser, "open", id=0)
    answer = "Fredville is the capital 【0†L9】; Mars has 2 moons 【1†L4-L5】. Bad 【7†L1】. Tail 【1†L"
    text, annotations, partial = browser.normalize_citations(answer)
    assert partial
    assert [a["url"] for a in annotations] == [f"{web.base}/index.html", f"{web.base}/table.html"]
    assert annotations[1]["lines"] == [4, 5]
    for a in annotations:
        assert text[a["start_index"]:a["end_index"]] == f" ([{a['title']}]({a['url']})) "
    assert "【7†L1】" in text  # unknown cursor: left as written
    hidden, _, _ = browser.normalize_citations(answer, hide_partial_citations=True)
    assert hidden.endswith("Tail ")
    call(browser, "find", pattern="mars")  # cursor 2: a find page cites the page searched
    _, found, _ = browser.normalize_citations("Mars 【2†L0-L1】")
    assert found[0]["url"] == f"{web.base}/table.html"


def test_namespace_config_matches_openai_harmony(browser, harmony_encoding):
    from openai_harmony import ToolNamespaceConfig as HarmonyConfig
    ours = browser.namespace_config()
    theirs = HarmonyConfig.browser()
    assert ours.description == theirs.description.replace("sources=web (default: web)",
                                                          "sources=local (default: local)")
    assert [t.model_dump() for t in ours.tools] == \
        [{"name": t.name, "description": t.description, "parameters": t.parameters}
         for t in theirs.tools]


def test_html_conversion_details():
    page = html_to_page("<title>T</title><p>a<br>b</p><p>x<sup>2</sup> H<sub>2</sub>O</p>"
                        "<a href='/img'><img alt='logo'></a><img src=x>"
                        "<ul><li>one<ul><li>inner</li></ul></li></ul>", "https://s.test/p")
    assert page.text.split("\n")[2:] == ["a", "b", "", "x^{2} H_{2}O", "",
                                         "[Image 0: logo][Image 1]", "  * one",
                                         "    * inner"]
    assert page.urls == {}  # an image-only link is not a text link
    long = "word " * 40
    assert all(len(line) <= 80 for line in wrap_lines(long)) and len(wrap_lines(long)) == 3
