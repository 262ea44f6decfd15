"""`python -m agent.tools.bench`: latency of the python sandbox and speed of page conversion.

Prints: worker cold start (bwrap + interpreter + first cell), a warm call's round trip, how
long a timed-out cell takes to come back and the restart after it, and HTML -> text speed.
"""
from __future__ import annotations

import statistics
import time

from agent.tools.browser.page import html_to_page
from agent.tools.python import Limits, PythonSession


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_python(rounds: int = 5, calls: int = 20) -> None:
    cold, warm = [], []
    for _ in range(rounds):
        with PythonSession(Limits(timeout=10)) as session:
            cold.append(timed(lambda: session.run("1")))
            warm += [timed(lambda: session.run("x = 1")) for _ in range(calls)]
    print(f"python: cold start + first cell  median {statistics.median(cold) * 1e3:.0f} ms")
    print(f"python: warm cell round trip      median {statistics.median(warm) * 1e3:.2f} ms")
    with PythonSession(Limits(timeout=0.5)) as session:
        session.run("1")
        stuck = timed(lambda: session.run("while True: pass"))
        again = timed(lambda: session.run("1"))
    print(f"python: 0.5 s timeout returns after {stuck:.2f} s; restart + cell {again * 1e3:.0f} ms")


def bench_html(paragraphs: int = 10000) -> None:
    html = "<html><body>" + "".join(
        f"<p>Paragraph {i} with a <a href='/l{i}'>link {i}</a> and <b>bold</b> text.</p>"
        f"<table><tr><td>a</td><td>b</td></tr></table>" for i in range(paragraphs)) + "</body></html>"
    page = None

    def convert():
        nonlocal page
        page = html_to_page(html, "http://bench.test/")
    seconds = timed(convert)
    print(f"browser: HTML -> text {len(html) / 1e6:.1f} MB in {seconds:.2f} s "
          f"({len(html) / 1e6 / seconds:.2f} MB/s), {len(page.urls)} links, "
          f"{len(page.lines)} lines")


if __name__ == "__main__":
    bench_python()
    bench_html()
