"""The `browser` tool: search, open and find on web pages, with gpt-oss's display format."""
from agent.tools.browser.backends import (DuckDuckGoBackend, LocalFolderBackend, SearchBackend,
                                          SearchResult)
from agent.tools.browser.citations import normalize_citations
from agent.tools.browser.fetch import Fetcher, FetchError
from agent.tools.browser.page import Page, html_to_page
from agent.tools.browser.tool import BrowserTool

__all__ = ["BrowserTool", "DuckDuckGoBackend", "FetchError", "Fetcher", "LocalFolderBackend",
           "Page", "SearchBackend", "SearchResult", "html_to_page", "normalize_citations"]
