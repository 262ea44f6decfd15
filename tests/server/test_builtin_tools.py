"""/v1/responses serves the built-in tools itself, as the reference gpt-oss server does:
`web_search` through the project's browser (a local folder of documents here) and
`code_interpreter` through the sandboxed python, with their output items and url_citation
annotations, read back by the official `openai` client."""
from __future__ import annotations

import openai_harmony as oh
import pytest

from agent.backends.local import LocalBackend
from agent.backends.scripted import ScriptedBackend
from agent.tools.browser.backends import LocalFolderBackend
from agent.tools.browser.tool import BrowserTool
from agent.tools.python.sandbox import find_bwrap
from agent.tools.toolbox import Toolbox

SEARCH = ('<|channel|>analysis<|message|>Search for it.<|end|><|start|>assistant'
          '<|channel|>analysis to=browser.search code<|message|>{"query": "teapot"}<|call|>')
OPEN = '<|channel|>analysis to=browser.open code<|message|>{"id": 0}<|call|>'
CITED = "<|channel|>final<|message|>Teapots are for tea 【1†L1-L2】.<|return|>"
CODE = '<|channel|>analysis to=python code<|message|>print(6 * 7)<|call|>'
ANSWER = "<|channel|>final<|message|>It is 42.<|return|>"


@pytest.fixture
def library(tmp_path):
    (tmp_path / "teapot.md").write_text("# Teapots\n\nA teapot is a vessel for brewing tea.\n")
    return tmp_path


def tools_in(folder):
    def make(kinds):
        tools = []
        if "browser" in kinds:
            tools.append(BrowserTool(LocalFolderBackend(folder)))
        if "python" in kinds:
            tools.append("python")
        return Toolbox(tools)
    return make


def test_web_search_runs_in_the_server_and_the_answer_cites_it(serve, library, harmony_encoding):
    backend = ScriptedBackend([SEARCH, OPEN, CITED])
    with serve(backend, builtin_tools=tools_in(library)) as (_, client):
        response = client.responses.create(model="test-model", input="what is a teapot",
                                           tools=[{"type": "web_search"}])
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "web_search_call", "web_search_call", "message"], kinds
    search, opened = response.output[1], response.output[2]
    assert search.status == "completed" and search.action.query == "teapot"
    assert opened.action.type == "open_page" and "teapot" in opened.action.url
    (citation,) = response.output[3].content[0].annotations
    assert citation.type == "url_citation" and citation.url == opened.action.url
    text = response.output[3].content[0].text
    assert text[citation.start_index:citation.end_index] == "【1†L1-L2】"
    # the second prompt carries the browser namespace and the search result, as openai-harmony
    # parses them
    second = harmony_encoding.decode(backend.prompts[1])
    assert "namespace browser" in second and "vessel for brewing tea" in second
    messages = harmony_encoding.parse_messages_from_completion_tokens(
        backend.prompts[1][1:-2], oh.Role.SYSTEM)
    assert messages[-1].author.name == "browser.search"


@pytest.mark.skipif(find_bwrap() is None, reason="bwrap is not installed")
@pytest.mark.parametrize("stream", [False, True])
def test_code_interpreter_runs_the_sandboxed_python(serve, library, stream):
    backend = ScriptedBackend([CODE, ANSWER])
    with serve(backend, builtin_tools=tools_in(library)) as (_, client):
        if not stream:
            response = client.responses.create(model="test-model", input="6 * 7?",
                                               tools=[{"type": "code_interpreter",
                                                       "container": {"type": "auto"}}])
        else:
            events = list(client.responses.create(
                model="test-model", input="6 * 7?", stream=True,
                tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]))
            assert "response.code_interpreter_call.completed" in {e.type for e in events}
            response = events[-1].response
    call = next(item for item in response.output if item.type == "code_interpreter_call")
    assert call.code == "print(6 * 7)" and call.outputs[0].logs.strip() == "42"
    assert response.output_text == "It is 42."


@pytest.mark.skipif(find_bwrap() is None, reason="bwrap is not installed")
def test_the_embedded_model_answers_through_code_interpreter(serve):
    with serve(LocalBackend.load(None), max_context=8192) as (_, client):
        response = client.responses.create(model="test-model", input="What is 1234 * 5678?",
                                           tools=[{"type": "code_interpreter",
                                                   "container": {"type": "auto"}}],
                                           max_output_tokens=400)
    calls = [item for item in response.output if item.type == "code_interpreter_call"]
    assert calls and calls[0].outputs[0].logs.strip() == "7006652"
    assert "7006652" in response.output_text.replace(",", "")
