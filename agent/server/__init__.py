"""OpenAI-compatible server over any generation backend (`python -m agent serve`).

Data flows one way: request (schemas) -> Harmony conversation (conversation) -> prompt tokens
(state, via agent.harmony) -> request queue (engine, batching) -> generated tokens -> deltas
(decode) -> chat / responses / raw-completion bodies and SSE streams (chat, responses,
completions). `app.create_app(backend, name)` wires it together; `errors` turns every refusal
into an OpenAI-style error body; `watch` cancels work for clients that left; `loadtest` is the
bounded loopback benchmark.
"""
