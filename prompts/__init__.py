"""Prompt templates (jinja2) of the Harmony renderer, installed as `agent.prompts`.

    system.jinja            system message: identity, dates, reasoning effort, tools, channels
    developer.jinja         developer message: instructions, function tools, response formats
    tools.jinja             `# Tools` section, `namespace functions { ... }` blocks
    response_formats.jinja  `# Response Formats` (structured output)

To change a prompt without touching code, copy a template into a folder, edit it, and pass the
folder as `agent.harmony.Renderer(template_dir=...)` or set $GPT_OSS_AGENT_PROMPTS_DIR. Templates not
in that folder come from here. The packaged ones reproduce openai-harmony's text exactly.
"""

if __name__ != "agent.prompts":  # run from the repo root as `prompts`: see agent/shadowing.py
    from agent.shadowing import stand_aside
    stand_aside(__name__)
