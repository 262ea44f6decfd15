"""Synthetic agent tasks for the nano model: what the user asks, which tool call solves it,
what the tool really returns, and the answer built from that output.

Four kinds:
  * "arithmetic", "unit", "string": solved by a `python` call; the code is executed here
    (in-process, on code this module wrote) and its printed output is the answer;
  * "function": a custom function from the developer message, with a made-up name and
    parameters, called with values copied from the request; its (made-up) result is used
    in the answer;
  * "direct": no tool needed.
The analysis text is sampled per reasoning effort: short for low, long for high.
"""
from __future__ import annotations

import contextlib
import io
import json
import random
from dataclasses import dataclass, field

EFFORTS = ("low", "medium", "high")
CATEGORIES = ("arithmetic", "unit", "string", "function", "direct")


@dataclass
class FunctionSpec:
    name: str
    description: str
    parameters: dict  # JSON Schema


@dataclass
class Task:
    category: str
    effort: str
    user: str
    functions: list[FunctionSpec] = field(default_factory=list)
    # the tool call that solves the task: recipient + arguments (code, or JSON text)
    recipient: str | None = None
    arguments: str | None = None
    call_args: dict | None = None          # parsed arguments of a function call
    tool_output: str | None = None         # what the tool returns
    answer: str = ""                       # text that must appear in the final answer
    analysis: list[str] = field(default_factory=list)   # before the call (or the answer)
    after: list[str] = field(default_factory=list)      # after the tool result
    final: str = ""


def run_python(code: str) -> str:
    """Execute generated code and return what it printed (stripped)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<task>", "exec"), {"__builtins__": __builtins__})
    return out.getvalue().strip()


# ---------------------------------------------------------------- shared wording helpers

def _pick(rng: random.Random, options):
    return options[rng.randrange(len(options))]


def _number(rng: random.Random) -> int:
    digits = rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6))
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)


def _decimal(rng: random.Random) -> str:
    whole = rng.choice((rng.randint(0, 9), rng.randint(10, 99), rng.randint(100, 999)))
    return f"{whole}.{rng.randint(1, 99 if rng.random() < 0.6 else 9)}"


def _analysis(rng: random.Random, effort: str, low, medium, high) -> list[str]:
    """One analysis message; its length follows the effort (sentence pools per level)."""
    if effort == "low":
        return [_pick(rng, low)]
    if effort == "medium":
        return [" ".join([_pick(rng, medium[0]), _pick(rng, medium[1])])]
    count = rng.randint(3, 5)
    sentences = [_pick(rng, high[0])]
    pool = list(high[1])
    rng.shuffle(pool)
    sentences += pool[:count - 2]
    sentences.append(_pick(rng, high[2]))
    return [" ".join(sentences)]


def _after(rng: random.Random, effort: str, said, added) -> list[str]:
    """Analysis after the tool result: none at low, one sentence at medium, two at high."""
    if effort == "low":
        return []
    text = _pick(rng, said)
    if effort == "high":
        text += " " + _pick(rng, added)
    return [text]


# ---------------------------------------------------------------- python tasks

ARITH_OPS = (("+", "plus", "sum"), ("-", "minus", "difference"), ("*", "times", "product"),
             ("//", "integer-divided by", "integer quotient"), ("%", "mod", "remainder"),
             ("/", "divided by", "quotient"))


def _arith_expression(rng: random.Random) -> tuple[str, str, str]:
    """-> (expression as code, expression as the user writes it, short description)."""
    kind = rng.random()
    if kind < 0.55:
        a, b = _number(rng), _number(rng)
        op, word, noun = _pick(rng, ARITH_OPS)
        if op in ("//", "%", "/"):
            b = max(b, 1) if b < 1000 else rng.randint(2, 999)
        if op == "/":
            return f"round({a} / {b}, 4)", f"{a} / {b}", f"the {noun} of {a} and {b}"
        shown = f"{a} {op} {b}" if rng.random() < 0.7 else f"{a} {word} {b}"
        return f"{a} {op} {b}", shown, f"the {noun} of {a} and {b}"
    if kind < 0.75:
        a, b, c = _number(rng), _number(rng), rng.randint(2, 99)
        op1, op2 = _pick(rng, ("+", "-")), _pick(rng, ("*", "+", "-"))
        expr = f"({a} {op1} {b}) {op2} {c}"
        return expr, expr, f"({a} {op1} {b}) {op2} {c}"
    if kind < 0.85:
        a, e = rng.randint(2, 99), rng.randint(2, 6)
        return f"{a} ** {e}", f"{a} ** {e}" if rng.random() < 0.5 else f"{a} to the power of {e}", \
            f"{a} to the power {e}"
    if kind < 0.93:
        p, a = rng.choice((5, 10, 12.5, 15, 20, 25, 30, 40, 75)), _number(rng)
        return f"round({p} / 100 * {a}, 4)", f"{p}% of {a}", f"{p} percent of {a}"
    a, b = _decimal(rng), _decimal(rng)
    op = _pick(rng, ("+", "-", "*"))
    return f"round({a} {op} {b}, 4)", f"{a} {op} {b}", f"{a} {op} {b}"


ARITH_QUESTIONS = ("What is {e}?", "Compute {e}.", "Calculate {e}.", "What's {e}?",
                   "Please compute {e}.", "How much is {e}?", "{e} = ?", "Evaluate {e}.",
                   "Can you work out {e}?", "What does {e} come to?", "Solve {e}.",
                   "I need the value of {e}.")


def arithmetic_task(rng: random.Random, effort: str) -> Task:
    code_expr, shown, desc = _arith_expression(rng)
    code = f"print({code_expr})"
    out = run_python(code)
    user = _pick(rng, ARITH_QUESTIONS).format(e=shown)
    analysis = _analysis(
        rng, effort,
        low=(f"Compute {shown} with python.", "Use python.", f"Need {desc}. Use python.",
             f"Calculate {shown} in python."),
        medium=((f"The user wants {desc}.", f"We need to evaluate {shown}.",
                 f"User asks for {shown}."),
                ("I'll run it in python to get the exact value.",
                 "Use python so the number is exact.", "Let me compute it with python.")),
        high=((f"The user asks: {user}", f"We need to evaluate {shown}."),
              (f"That is {desc}.", "Mental arithmetic can slip on a digit, so I won't guess.",
               "The python tool gives an exact result.",
               f"The expression to run is {code_expr}.",
               "I will print the value so the output is easy to read.",
               "Then I report the printed number as it is."),
              ("Let me call python now.", "Run it in python.", "Call python with the code.")))
    after = _after(rng, effort, (
        f"python printed {out}.", f"The result is {out}.", f"Output: {out}. That is the answer.",
        f"So {shown} = {out}."), (
        f"I will answer with {out}.", "That came straight from python, so it is exact.",
        f"The final answer is {out}."))
    final = _pick(rng, (f"{shown} = {out}", f"The answer is {out}.", f"{out}",
                        f"{shown} is {out}.", f"It comes to {out}.", f"The result is **{out}**."))
    return Task("arithmetic", effort, user, recipient="python", arguments=code,
                tool_output=out, answer=out, analysis=analysis, after=after, final=final)


UNITS = (  # (from, to, code template producing the value, plural names)
    ("km", "miles", "round({v} * 0.621371, 3)"), ("miles", "km", "round({v} * 1.609344, 3)"),
    ("kg", "pounds", "round({v} * 2.204623, 3)"), ("pounds", "kg", "round({v} * 0.453592, 3)"),
    ("meters", "feet", "round({v} * 3.28084, 3)"), ("feet", "meters", "round({v} * 0.3048, 3)"),
    ("inches", "cm", "round({v} * 2.54, 3)"), ("cm", "inches", "round({v} / 2.54, 3)"),
    ("liters", "gallons", "round({v} * 0.264172, 3)"),
    ("gallons", "liters", "round({v} * 3.785412, 3)"),
    ("Celsius", "Fahrenheit", "round({v} * 9 / 5 + 32, 2)"),
    ("Fahrenheit", "Celsius", "round(({v} - 32) * 5 / 9, 2)"),
    ("hours", "minutes", "{v} * 60"), ("minutes", "seconds", "{v} * 60"),
    ("days", "hours", "{v} * 24"), ("hours", "seconds", "{v} * 3600"),
    ("GB", "MB", "{v} * 1024"), ("MB", "KB", "{v} * 1024"),
    ("grams", "ounces", "round({v} / 28.349523, 3)"), ("ounces", "grams", "round({v} * 28.349523, 3)"),
    ("mph", "km/h", "round({v} * 1.609344, 3)"), ("km/h", "mph", "round({v} / 1.609344, 3)"),
)

UNIT_QUESTIONS = ("Convert {v} {a} to {b}.", "How many {b} is {v} {a}?", "What is {v} {a} in {b}?",
                  "{v} {a} to {b}?", "Please convert {v} {a} into {b}.",
                  "How much is {v} {a} in {b}?", "Express {v} {a} in {b}.")


def unit_task(rng: random.Random, effort: str) -> Task:
    a, b, template = _pick(rng, UNITS)
    v = str(_number(rng) % 5000) if rng.random() < 0.6 else _decimal(rng)
    expr = template.format(v=v)
    code = f"print({expr})"
    out = run_python(code)
    user = _pick(rng, UNIT_QUESTIONS).format(v=v, a=a, b=b)
    analysis = _analysis(
        rng, effort,
        low=(f"Convert {v} {a} to {b} with python.", "Use python for the conversion.",
             f"{a} to {b}: use python."),
        medium=((f"The user wants {v} {a} in {b}.", f"Unit conversion from {a} to {b}."),
                ("I'll let python do the arithmetic.", "Compute it with python to be exact.")),
        high=((f"The user asks to convert {v} {a} to {b}.", f"This is a {a} to {b} conversion."),
              (f"The formula is {template.format(v='x')} for x {a}.",
               f"Here x is {v}.", "Rounding keeps the answer readable.",
               "Doing this by hand risks a mistake in the factor.",
               "python will print the converted value.",
               f"The code is {expr}."),
              ("Run it in python.", "Let me call python.", "Call python now.")))
    after = _after(rng, effort, (
        f"python printed {out}.", f"So {v} {a} is {out} {b}.", f"Result: {out} {b}."), (
        "That is the converted value.", f"Answer with {out} {b}."))
    final = _pick(rng, (f"{v} {a} is {out} {b}.", f"{v} {a} = {out} {b}",
                        f"That is {out} {b}.", f"It is about {out} {b}.", f"{out} {b}"))
    return Task("unit", effort, user, recipient="python", arguments=code, tool_output=out,
                answer=out, analysis=analysis, after=after, final=final)


WORDS = ("apple banana cherry orange lemon mango grape melon peach plum river mountain forest "
         "ocean desert island valley canyon meadow garden planet rocket galaxy comet nebula "
         "window kitchen bottle pencil laptop keyboard monitor printer router camera "
         "python harmony network sandbox compiler kernel matrix vector tensor gradient "
         "yellow purple silver golden crimson violet bright quiet rapid gentle "
         "hello world coffee tiger rabbit falcon dolphin penguin turtle spider "
         "monday friday summer winter autumn spring morning evening midnight sunrise "
         "banana bread butter cheese pepper tomato potato onion carrot ginger").split()


def _phrase(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.5:
        return _pick(rng, WORDS)
    if r < 0.8:
        return " ".join(_pick(rng, WORDS) for _ in range(rng.randint(2, 3)))
    return invented_word(rng)


def string_task(rng: random.Random, effort: str) -> Task:
    s = _phrase(rng)
    kind = rng.randrange(7)
    if kind == 0:
        code, user, what = f"print({s!r}[::-1])", _pick(rng, (
            f"Reverse the string '{s}'.", f"What is '{s}' reversed?",
            f"Write '{s}' backwards.")), "the reversed string"
    elif kind == 1:
        code, user, what = f"print(len({s!r}))", _pick(rng, (
            f"How many characters are in '{s}'?", f"What is the length of '{s}'?",
            f"Count the characters in '{s}'.")), "the length"
    elif kind == 2:
        code, user, what = f"print({s!r}.upper())", _pick(rng, (
            f"Convert '{s}' to uppercase.", f"Uppercase '{s}'.",
            f"What is '{s}' in capital letters?")), "the uppercase form"
    elif kind == 3:
        ch = rng.choice(s.replace(" ", "")) if rng.random() < 0.8 else rng.choice("aeiost")
        code, user, what = f"print({s!r}.count({ch!r}))", _pick(rng, (
            f"How many times does '{ch}' appear in '{s}'?",
            f"Count the letter '{ch}' in '{s}'.",
            f"How often does '{ch}' occur in '{s}'?")), f"the count of '{ch}'"
    elif kind == 4:
        code, user, what = f"print(''.join(sorted({s!r}.replace(' ', ''))))", _pick(rng, (
            f"Sort the letters of '{s}' alphabetically.",
            f"What are the letters of '{s}' in sorted order?")), "the sorted letters"
    elif kind == 5:
        code, user, what = f"print(len({s!r}.split()))", _pick(rng, (
            f"How many words are in '{s}'?", f"Count the words in '{s}'.")), "the word count"
    else:
        code, user, what = f"print({s!r}.title())", _pick(rng, (
            f"Capitalize each word of '{s}'.", f"Title-case '{s}'.")), "the title-cased text"
    out = run_python(code)
    analysis = _analysis(
        rng, effort,
        low=("Use python.", f"Get {what} with python.", "python can do this."),
        medium=((f"The user wants {what} of '{s}'.", f"We need {what} for '{s}'."),
                ("I'll compute it with python.", "python avoids counting mistakes.")),
        high=((f"The user asks: {user}", f"The input string is '{s}'."),
              (f"We need {what}.", "Doing it by eye is error-prone.",
               "A one-line python snippet handles it exactly.",
               f"The code is {code}.", "I should copy the string exactly, spaces included.",
               "Then I report the output unchanged."),
              ("Run it in python.", "Let me call python.", "Call python now.")))
    # the output starts a line wherever it is repeated: a word after a space is another token
    # (" Cheese" vs "Che" "ese"), and respelling is beyond a model this small
    after = _after(rng, effort, (
        f"python printed:\n{out}", f"Result:\n{out}", f"The output is:\n{out}"), (
        "That answers the question.", "I will give that exact output."))
    final = _pick(rng, (f"The answer is:\n{out}", f"{out}", f"Result:\n{out}",
                        f"Here it is:\n{out}"))
    return Task("string", effort, user, recipient="python", arguments=code, tool_output=out,
                answer=out, analysis=analysis, after=after, final=final)


# ---------------------------------------------------------------- custom functions

SYLLABLES = ("ka zo ri mu te vo la pe ni qu sa bo xi gu fe do lo mi ta ve ru ze wa "
             "ko ba di ne po si tu ya ho ju ce fa gi le mo nu pa ro sy vi we").split()
ENDINGS = ("", "", "n", "r", "x", "k", "t", "s", "m", "l")
VERBS = ("get", "fetch", "lookup", "find", "check", "compute", "list", "create", "send",
         "estimate", "count", "book", "search", "update", "query", "resolve", "measure",
         "calc", "load", "submit")
THINGS = ("rate index score status price forecast balance report level count quota record "
          "ticket profile summary total limit token value stock schedule").split()
PARAM_WORDS = ("city region year count name code user item amount days size color country "
               "date limit mode level label target source zone unit tag owner port id").split()
STRING_VALUES = ("Paris Tokyo Oslo Lima Cairo Berlin Madrid Toronto Sydney Nairobi Denver "
                 "Austin Boston Dublin Seoul Delhi Rome Vienna Prague Zurich red blue green "
                 "alpha beta gamma delta north south east west Alice Bob Carol Dave Erin "
                 "Frank Grace Heidi Ivan Judy").split()
RESULT_WORDS = ("approved pending sunny cloudy rainy active closed open available sold-out "
                "confirmed delayed stable rising falling high low normal").split()


def invented_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))) + rng.choice(ENDINGS)


def _function(rng: random.Random) -> tuple[FunctionSpec, str, list[tuple[str, str]]]:
    """A made-up function: its spec, the phrase naming its subject, its (param, type) list."""
    subject_words = [invented_word(rng)] + ([_pick(rng, THINGS)] if rng.random() < 0.8 else [])
    subject = " ".join(subject_words)
    name = "_".join([_pick(rng, VERBS)] + subject_words)
    params = []
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        pname = _pick(rng, PARAM_WORDS) if rng.random() < 0.5 else invented_word(rng)
        if rng.random() < 0.3:
            pname += "_" + _pick(rng, PARAM_WORDS)
        if pname in {p for p, _ in params}:
            continue
        params.append((pname, rng.choice(("string", "string", "integer", "number", "boolean"))))
    described = rng.random() < 0.5
    props = {p: {"type": t, **({"description": f"The {p.replace('_', ' ')}."} if described else {})}
             for p, t in params}
    schema = {"type": "object", "properties": props, "required": [p for p, _ in params]}
    description = _pick(rng, (f"Returns the {subject}.", f"Looks up the {subject}.",
                              f"Gets the current {subject}.", f"Computes the {subject}."))
    return FunctionSpec(name, description, schema), subject, params


def _value(rng: random.Random, kind: str):
    if kind == "integer":
        return _number(rng) % 100000
    if kind == "number":
        return float(_decimal(rng))
    if kind == "boolean":
        return rng.random() < 0.5
    return _pick(rng, STRING_VALUES) if rng.random() < 0.7 else invented_word(rng).capitalize()


def _shown(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def function_task(rng: random.Random, effort: str) -> Task:
    specs = [_function(rng) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
    spec, subject, params = _pick(rng, specs)
    args = {p: _value(rng, t) for p, t in params}
    pairs = [f"{p.replace('_', ' ')} {_shown(v)}" for p, v in args.items()]
    joined = pairs[0] if len(pairs) == 1 else ", ".join(pairs[:-1]) + " and " + pairs[-1]
    user = _pick(rng, (f"What is the {subject} for {joined}?",
                       f"Get the {subject} for {joined}.",
                       f"Can you look up the {subject} with {joined}?",
                       f"I need the {subject} for {joined}.",
                       f"Check the {subject}: {joined}."))
    if rng.random() < 0.5:
        result_value = _pick(rng, RESULT_WORDS)
    else:
        result_value = _number(rng) % 10000 if rng.random() < 0.6 else float(_decimal(rng))
    key = subject.split()[-1]
    result = json.dumps({key: result_value})
    arguments = json.dumps(args)
    name = spec.name
    first = f"{params[0][0]}={_shown(args[params[0][0]])}"
    analysis = _analysis(
        rng, effort,
        low=(f"Call {name}.", f"Use {name}.", f"Need {name} with {first}."),
        medium=((f"The user wants the {subject}.", f"User asks for the {subject} for {joined}."),
                (f"The {name} function does this; pass {first}.",
                 f"I'll call {name} with the given values.")),
        high=((f"The user asks for the {subject}.", f"Request: the {subject} for {joined}."),
              (f"The developer lists {name}, which matches.",
               f"Its parameters are {', '.join(p for p, _ in params)}.",
               f"The values come from the request: {joined}.",
               "I must copy each value exactly.",
               "No other tool fits this request.",
               f"The first argument is {first}."),
              (f"Call {name} now.", f"Let me call {name}.", "Make the function call.")))
    out = _shown(result_value)
    after = _after(rng, effort, (
        f"The tool returned {key} {out}.", f"Result: {out}.", f"{name} says {out}."), (
        "Report it to the user.", f"So the {subject} is {out}."))
    final = _pick(rng, (f"The {subject} for {joined} is {out}.", f"The {subject} is {out}.",
                        f"It is {out}."))
    return Task("function", effort, user, functions=[s for s, _, _ in specs],
                recipient=f"functions.{name}", arguments=arguments, call_args=args,
                tool_output=result, answer=out, analysis=analysis, after=after, final=final)


# ---------------------------------------------------------------- direct answers

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Norway": "Oslo", "Peru": "Lima",
            "Egypt": "Cairo", "Germany": "Berlin", "Spain": "Madrid", "Canada": "Ottawa",
            "Australia": "Canberra", "Kenya": "Nairobi", "Italy": "Rome", "Austria": "Vienna",
            "Ireland": "Dublin", "Portugal": "Lisbon", "Greece": "Athens", "Poland": "Warsaw",
            "Sweden": "Stockholm", "Finland": "Helsinki", "Chile": "Santiago",
            "Mexico": "Mexico City", "India": "New Delhi", "China": "Beijing"}
SMALL_TALK = (("Hi!", "Hello! How can I help you today?"),
              ("Hello", "Hi there! What can I do for you?"),
              ("Thanks!", "You're welcome!"), ("Thank you", "Happy to help!"),
              ("Who are you?", "I'm a small assistant model. I can run python and call tools."),
              ("What can you do?", "I can answer questions, run python code and call tools."),
              ("Good morning", "Good morning! How can I help?"),
              ("How are you?", "I'm doing well, thanks for asking. How can I help?"))


def direct_task(rng: random.Random, effort: str) -> Task:
    if rng.random() < 0.6:
        country = _pick(rng, sorted(CAPITALS))
        user = _pick(rng, (f"What is the capital of {country}?", f"Capital of {country}?",
                           f"Which city is the capital of {country}?"))
        answer = CAPITALS[country]
        final = _pick(rng, (f"The capital of {country} is {answer}.", f"{answer}."))
        topic = f"the capital of {country}"
    else:
        user, final = _pick(rng, SMALL_TALK)
        answer, topic = final, "a greeting"
    analysis = _analysis(
        rng, effort,
        low=("Answer directly.", "No tool needed.", "Simple reply."),
        medium=((f"The user asks about {topic}.", "This is a simple question."),
                ("No tool is needed; answer directly.", "I can reply without tools.")),
        high=((f"The user asks about {topic}.", f"The message is: {user}"),
              ("This does not need python.", "No function from the developer applies.",
               "I know this without looking it up.", "A short, friendly answer is best.",
               "There is nothing to compute here.", "Keep it brief."),
              ("Answer now.", "Reply directly.", "Give the answer.")))
    return Task("direct", effort, user, answer=answer, analysis=analysis, final=final)


BUILDERS = {"arithmetic": arithmetic_task, "unit": unit_task, "string": string_task,
            "function": function_task, "direct": direct_task}


def random_task(rng: random.Random, category: str | None = None, effort: str | None = None,
                with_functions: bool | None = None) -> Task:
    """A task; `with_functions` forces whether the developer message lists functions
    (function tasks always do; other tasks then get functions that do not fit)."""
    if with_functions is None:
        with_functions = rng.random() < 0.6
    if category is None:
        if with_functions:
            category = "function" if rng.random() < 0.65 else _pick(rng, CATEGORIES[:3] + ("direct",))
        else:
            category = rng.choices(CATEGORIES[:3] + ("direct",), (0.36, 0.24, 0.24, 0.16))[0]
    effort = effort or _pick(rng, EFFORTS)
    task = BUILDERS[category](rng, effort)
    if category != "function" and with_functions:
        # functions that do not fit: the model must still pick python / no tool
        task.functions = [_function(rng)[0] for _ in range(rng.choice((1, 1, 2)))]
    return task
