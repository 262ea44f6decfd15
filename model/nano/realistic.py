"""Agent tasks that look like real use, for the nano model's training data (beside tasks.py).

What users type and what developers declare, not invented syllables:
  * function tools with English snake_case names (verb, optional qualifier, subject), docstring
    summaries and argument notes in several styles, several tools per developer message,
    realistic values (IDs, codes, cities, names, dates, enums, optional parameters) and JSON
    results with several fields;
  * python tasks in natural phrasings (questions, commands, lower case, no punctuation,
    typos, filler words, some Chinese) with correct unit factors and word problems;
  * direct answers, and multi-turn sessions where each turn is a new task (data.py).
Names listed in HELD_OUT_NAMES (the hand-written evaluation's tools and examples/' tools) are
never generated; the evaluation's phrasings are written separately (tests/data).
"""
from __future__ import annotations

import json
import random

from agent.model.nano.tasks import FunctionSpec, Task, run_python

# tests/data/nano_eval_tools.py and examples/custom_tool.py: the evaluation measures names
# the model never saw (tests/nano/test_realistic.py checks this list against those files)
HELD_OUT_NAMES = frozenset("""
book_hotel calculate_shipping_cost cancel_subscription check_domain_availability
check_inventory convert_money create_calendar_event find_restaurants get_account_balance
get_air_quality get_bike_share_stations get_bus_arrivals get_conference_room get_country_info
get_credit_score get_crypto_price get_current_weather get_earthquake_reports
get_electricity_usage get_employee_info get_exchange_rate get_fuel_prices get_git_commit
get_github_stars get_gym_class_schedule get_holiday_calendar get_invoice get_library_book
get_loan_payment get_mortgage_rates get_movie_showtimes get_nutrition_facts get_order_status
get_package_version get_parking_availability get_patient_appointment get_pet_adoption_listings
get_pharmacy_hours get_podcast_episodes get_population get_product_price get_recipe
get_rental_cars get_school_grades get_server_status get_ski_conditions get_sports_score
get_stock_quote get_sunrise_sunset get_tax_rate get_tide_times get_time_in_timezone
get_traffic_info get_train_schedule get_user_profile get_vaccination_record
get_warranty_status get_weather get_wifi_password list_open_tickets lookup_flight
lookup_ip_address lookup_word_definition lookup_zip_code reset_password search_contacts
send_email set_thermostat track_package translate_text convert_currency
""".split())


def pick(rng: random.Random, options):
    return options[rng.randrange(len(options))]


# ---------------------------------------------------------------- value pools

CITIES = ("Paris London Berlin Madrid Rome Vienna Prague Warsaw Budapest Lisbon Dublin Oslo "
          "Stockholm Helsinki Copenhagen Amsterdam Brussels Zurich Geneva Milan Naples Porto "
          "Barcelona Valencia Seville Lyon Marseille Nice Hamburg Frankfurt Cologne Stuttgart "
          "Leipzig Krakow Athens Istanbul Cairo Lagos Nairobi Accra Casablanca Dubai Doha "
          "Mumbai Delhi Bangalore Chennai Karachi Dhaka Bangkok Hanoi Manila Jakarta Singapore "
          "Seoul Busan Tokyo Osaka Kyoto Beijing Shanghai Shenzhen Taipei Sydney Melbourne "
          "Brisbane Perth Auckland Toronto Montreal Vancouver Calgary Ottawa Chicago Houston "
          "Phoenix Dallas Denver Seattle Portland Boston Miami Atlanta Austin Nashville Detroit "
          "Minneapolis Baltimore Philadelphia Pittsburgh Cleveland Orlando Tampa Sacramento "
          "Honolulu Anchorage Lima Bogota Quito Santiago Caracas Havana Montevideo Edinburgh "
          "Glasgow Manchester Liverpool Bristol Leeds Cardiff Belfast Reykjavik Tallinn Riga "
          "Vilnius Sofia Bucharest Belgrade Zagreb Ljubljana Bratislava Kyiv Tbilisi Yerevan").split()
CITIES += ["New York", "Los Angeles", "San Francisco", "San Diego", "Las Vegas", "Mexico City",
           "Buenos Aires", "Rio de Janeiro", "Sao Paulo", "Cape Town", "Hong Kong", "Kuala Lumpur",
           "Tel Aviv", "New Delhi", "Salt Lake City", "St. Louis", "Kansas City", "Hanover"]
COUNTRIES = ("France Germany Spain Italy Portugal Ireland Norway Sweden Finland Denmark Poland "
             "Austria Switzerland Belgium Netherlands Greece Turkey Egypt Kenya Nigeria Ghana "
             "Morocco India Pakistan Bangladesh Thailand Vietnam Indonesia Philippines Japan "
             "China Korea Australia Canada Mexico Brazil Argentina Chile Peru Colombia Iceland "
             "Estonia Latvia Lithuania Hungary Romania Bulgaria Croatia Serbia Ukraine").split()
COUNTRY_CODES = "US GB DE FR ES IT PT IE NO SE FI DK PL AT CH BE NL GR TR EG KE IN JP CN KR AU CA MX BR AR CL".split()
STATES = "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY".split()
CURRENCIES = "USD EUR GBP JPY CHF CAD AUD NZD CNY INR SEK NOK DKK PLN CZK HUF MXN BRL ZAR KRW SGD HKD TRY".split()
TICKERS = ("AAPL MSFT GOOG AMZN META NFLX TSLA NVDA AMD INTC IBM ORCL CRM ADBE UBER LYFT SHOP "
           "SPOT SNAP PYPL V MA JPM BAC WMT KO PEP DIS NKE SBUX BA GE F GM XOM CVX PFE MRNA").split()
COINS = "BTC ETH SOL ADA XRP DOGE DOT LTC AVAX LINK".split()
FIRST = ("James Mary Robert Linda Michael Sarah David Emma Daniel Olivia Thomas Sofia Lucas Mia "
         "Ahmed Fatima Wei Mei Hiroshi Yuki Raj Ananya Carlos Lucia Pierre Claire Hans Greta "
         "Ivan Olga Kwame Amara Diego Elena Noah Chloe Omar Leila Sven Ingrid Marco Giulia "
         "Pablo Ines Tariq Nadia Jonas Freya Arjun Deepa Liam Zoe Ethan Ava Mateo Camila").split()
LAST = ("Smith Johnson Brown Garcia Miller Davis Rodriguez Martinez Wilson Anderson Taylor "
        "Thomas Moore Martin Jackson White Harris Clark Lewis Walker Young King Wright Scott "
        "Green Baker Adams Nelson Hill Campbell Mitchell Roberts Carter Phillips Evans Turner "
        "Muller Schmidt Schneider Fischer Weber Rossi Russo Dubois Laurent Kowalski Nowak "
        "Tanaka Suzuki Kim Park Chen Wang Singh Patel Kumar Silva Santos Costa Jensen Hansen").split()
WORDS = ("apple river garden rocket silver forest window bridge castle dragon falcon harbor "
         "island jungle lemon marble meadow nectar orchid pepper quartz raven saddle tiger "
         "velvet walnut yellow zebra anchor bamboo candle desert ember feather glacier hollow "
         "ivory jasmine kettle lantern mango nutmeg olive pebble quill ribbon sapphire thistle "
         "umbrella violet willow cobalt crimson copper maple cedar spruce coral lotus summit "
         "breeze canyon comet delta echo fjord granite horizon indigo juniper karma lagoon "
         "mosaic nova opal prism quest ripple sierra tundra vertex whisper atlas beacon cipher "
         "dynamo fusion galaxy helix ion jet krypton lunar matrix nimbus orbit pixel quantum "
         "radar sonic titan ultra vortex zenith alpha bravo charlie foxtrot hotel juliet kilo "
         "lima mike oscar papa romeo tango victor whiskey yankee zulu").split()
ADJECTIVES = "red blue green quiet rapid bright dark happy lazy brave tiny giant smart swift calm wild".split()
HOSTS = ("web api db cache auth mail proxy worker queue search build gateway edge cdn backup "
         "metrics logs vpn dns storage").split()
LANGS = {"es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese",
         "ja": "Japanese", "zh": "Chinese", "ko": "Korean", "nl": "Dutch", "sv": "Swedish",
         "pl": "Polish", "tr": "Turkish", "ru": "Russian", "ar": "Arabic", "hi": "Hindi"}
TIMEZONES = ("Europe/London Europe/Paris Europe/Berlin Europe/Madrid Europe/Rome Asia/Tokyo "
             "Asia/Seoul Asia/Shanghai Asia/Singapore Asia/Kolkata Asia/Dubai America/New_York "
             "America/Chicago America/Denver America/Los_Angeles America/Toronto "
             "America/Sao_Paulo Australia/Sydney Africa/Cairo Africa/Lagos Pacific/Auckland").split()
STATUS = ("active pending approved rejected shipped delivered processing cancelled open closed "
          "resolved in_progress on_hold scheduled completed failed running stopped healthy "
          "degraded available booked confirmed expired valid").split()


def code(rng: random.Random, prefix: str | None = None) -> str:
    """An ID like ORD-48213, A-10442, TK88121 or 7F3K9."""
    style = rng.randrange(5)
    letters = prefix or "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(1, 3)))
    digits = str(rng.randint(10, 999999))
    if style == 0:
        return f"{letters}-{digits}"
    if style == 1:
        return f"{letters}{digits}"
    if style == 2:
        return digits
    if style == 3:
        return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(rng.randint(5, 9)))
    return f"{letters}-{rng.randint(1000, 9999)}-{rng.randint(10, 99)}"


def date(rng: random.Random) -> str:
    return f"{rng.randint(2024, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def clock(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{pick(rng, ('00', '15', '30', '45', f'{rng.randint(0, 59):02d}'))}"


def person(rng: random.Random) -> str:
    return f"{pick(rng, FIRST)} {pick(rng, LAST)}"


def money(rng: random.Random) -> float:
    return round(rng.choice((rng.uniform(1, 100), rng.uniform(100, 5000), rng.uniform(1000, 90000))),
                 rng.choice((0, 2, 2)))


def amount(rng: random.Random):
    v = money(rng)
    return int(v) if v == int(v) else v


# slot kind -> (JSON type, value maker)
SLOTS = {
    "city": ("string", lambda r: pick(r, CITIES)),
    "country": ("string", lambda r: pick(r, COUNTRIES)),
    "country_code": ("string", lambda r: pick(r, COUNTRY_CODES)),
    "state": ("string", lambda r: pick(r, STATES)),
    "currency": ("string", lambda r: pick(r, CURRENCIES)),
    "ticker": ("string", lambda r: pick(r, TICKERS)),
    "coin": ("string", lambda r: pick(r, COINS)),
    "person": ("string", person),
    "first_name": ("string", lambda r: pick(r, FIRST)),
    "email": ("string", lambda r: f"{pick(r, FIRST).lower()}.{pick(r, LAST).lower()}@"
                                  f"{pick(r, ('example.com', 'mail.com', 'corp.io', 'acme.org'))}"),
    "username": ("string", lambda r: f"{pick(r, FIRST).lower()}{pick(r, ('', '_', '.'))}{pick(r, LAST).lower()[:r.randint(1, 5)]}"),
    "code": ("string", code),
    "date": ("string", date),
    "time": ("string", clock),
    "month": ("string", lambda r: f"{r.randint(2024, 2027)}-{r.randint(1, 12):02d}"),
    "year": ("integer", lambda r: r.randint(1990, 2030)),
    "count": ("integer", lambda r: r.randint(1, 12)),
    "big_int": ("integer", lambda r: r.randint(100, 99999)),
    "amount": ("number", amount),
    "weight": ("number", lambda r: round(r.uniform(0.1, 40), r.choice((0, 1, 1, 2)))),
    "percent": ("number", lambda r: round(r.uniform(0.5, 15), r.choice((1, 2)))),
    "temperature": ("number", lambda r: round(r.uniform(15, 28) * 2) / 2),
    "word": ("string", lambda r: pick(r, WORDS)),
    "title": ("string", lambda r: f"{pick(r, ADJECTIVES).title()} {pick(r, WORDS).title()}"),
    "phrase": ("string", lambda r: pick(r, ("Meeting moved to 3pm", "Thanks for your order",
                                               "Running late, start without me", "Happy birthday",
                                               "Please review the draft", "Server is back up",
                                               "Lunch on Friday?", "Invoice attached"))),
    "host": ("string", lambda r: f"{pick(r, HOSTS)}-{r.randint(1, 12):02d}"),
    "repo": ("string", lambda r: f"{pick(r, WORDS)}{pick(r, ('', 'labs', 'io', 'hq'))}/{pick(r, WORDS)}"),
    "domain": ("string", lambda r: f"{pick(r, WORDS)}{pick(r, WORDS)}.{pick(r, ('com', 'io', 'org', 'net', 'dev'))}"),
    "lang": ("string", lambda r: pick(r, sorted(LANGS))),
    "timezone": ("string", lambda r: pick(r, TIMEZONES)),
    "ip": ("string", lambda r: ".".join(str(r.randint(1, 254)) for _ in range(4))),
    "flight": ("string", lambda r: f"{pick(r, ('AA', 'UA', 'DL', 'BA', 'AF', 'KL', 'LH', 'EK', 'QR', 'NH', 'JL', 'IB', 'AZ', 'SK'))}{r.randint(1, 2999)}"),
    "sku": ("string", lambda r: code(r, pick(r, ("SKU", "PRD", "ITM", "P")))),
}


# ---------------------------------------------------------------- values no one could memorise

# Copying is the skill: a value the model never saw must reach the call and the answer exactly.
# A share of the values is drawn from spaces far too large to memorise (random letters, mixed
# case, accents, digits, other scripts), so the model learns to copy rather than to recall.
WILD_SHARE = 0.35
LOWER = "abcdefghijklmnopqrstuvwxyz"
ACCENTED = "áàâäãåçéèêëíìîïñóòôöõøúùûüýßæœčšžłńőű"
SCRIPTS = ("東京大阪京都北海道上海北京广州深圳山川田中村", "αβγδεζηθικλμνξοπρστυφχψω",
           "абвгдежзийклмнопрстуфхцчшщыэюя", "가나다라마바사아자차카타파하서울부산", "ابتثجحخدذرزسشصضطظعغفقكلمنهوي")
CODE_ALPHABETS = ("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", LOWER + "0123456789-_",
                  LOWER + LOWER.upper() + "0123456789")


def wild_word(rng: random.Random, lowest: int = 2, longest: int = 12) -> str:
    """A name-like word: random letters in some case, sometimes accents, digits or a script."""
    style = rng.randrange(9)
    if style == 0:
        pool = pick(rng, SCRIPTS)
        word = "".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
        return word.capitalize()
    word = "".join(rng.choice(LOWER + (ACCENTED if style == 1 else ""))
                   for _ in range(rng.randint(lowest, longest)))
    if style in (2, 3, 4):
        return word.capitalize()
    if style == 5:
        return word.upper()
    if style == 6:
        return "".join(ch.upper() if rng.random() < 0.3 else ch for ch in word)
    if style == 7:
        return word + str(rng.randint(0, 999))
    return word


def wild_code(rng: random.Random, longest: int = 16) -> str:
    alphabet = pick(rng, CODE_ALPHABETS)
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, longest)))


def wild_name(rng: random.Random) -> str:
    return " ".join(wild_word(rng, 3, 9).capitalize() for _ in range(rng.choice((1, 2, 2, 3))))


WILD = {
    "city": wild_name, "country": wild_name, "person": wild_name,
    "first_name": lambda r: wild_word(r, 3, 9).capitalize(),
    "word": lambda r: wild_word(r).lower(), "title": wild_name,
    "code": lambda r: wild_code(r, 40 if r.random() < 0.2 else 16), "sku": wild_code,
    "ticker": lambda r: wild_code(r, 6).upper(), "coin": lambda r: wild_code(r, 5).upper(),
    "currency": lambda r: "".join(r.choice(LOWER.upper()) for _ in range(3)),
    "email": lambda r: f"{wild_word(r, 2, 10).lower()}.{wild_word(r, 2, 10).lower()}@"
                       f"{wild_word(r, 3, 10).lower()}.{pick(r, ('com', 'io', 'org', 'net', 'de'))}",
    "username": lambda r: wild_word(r, 3, 14),
    "host": lambda r: f"{wild_word(r, 2, 8).lower()}-{r.randint(1, 99):02d}",
    "domain": lambda r: f"{wild_word(r, 3, 12).lower()}.{pick(r, ('com', 'io', 'org', 'net', 'dev'))}",
    "repo": lambda r: f"{wild_word(r, 2, 10).lower()}/{wild_word(r, 2, 12).lower()}",
    "phrase": lambda r: " ".join(wild_word(r, 1, 9) for _ in range(r.randint(2, 6))),
    "flight": lambda r: f"{wild_code(r, 2).upper()}{r.randint(1, 9999)}",
}


# Subjects: (name words, qualifier words it may take, description, params, result fields).
# params: (name, slot kind, how the user says it: "{v}" template(s), required)
# result fields: (key, slot kind or a tuple of choices); the first is the headline answer.
SUBJECTS = [
    (("weather", "forecast"), ("daily", "local", "hourly"), "Weather forecast for a place.",
     [("city", "city", ("in {v}", "for {v}"), True)],
     [("temperature_c", "temperature"), ("conditions", ("sunny", "cloudy", "rain", "snow", "windy", "fog"))]),
    (("share", "price"), ("latest", "live"), "Latest share price of a listed company.",
     [("ticker", "ticker", ("{v}", "for {v}", "of {v}"), True)],
     [("price", "amount"), ("change_percent", "percent")]),
    (("stock", "price"), ("current", "intraday"), "Current price of a stock.",
     [("symbol", "ticker", ("{v}", "of {v}", "for {v}"), True), ("exchange", ("NASDAQ", "NYSE", "LSE"), ("on {v}",), False)],
     [("last_price", "amount"), ("currency", "currency")]),
    (("flight", "status"), ("live", "current"), "Status of a flight by its number.",
     [("flight_id", "flight", ("{v}", "flight {v}"), True)],
     [("status", ("on time", "delayed", "boarding", "landed", "cancelled")), ("gate", "code")]),
    (("currency", "rate"), ("live", "daily"), "Exchange rate between two currencies.",
     [("from_code", "currency", ("from {v}", "{v}"), True), ("to_code", "currency", ("to {v}", "into {v}"), True)],
     [("rate", "percent")]),
    (("fx", "conversion"), (), "Converts an amount between currencies.",
     [("value", "amount", ("{v}",), True), ("src", "currency", ("{v}",), True), ("dst", "currency", ("to {v}", "in {v}"), True)],
     [("converted", "amount")]),
    (("order",), ("customer", "shop"), "Details of a customer order.",
     [("order_number", "code", ("order {v}", "#{v}"), True)],
     [("state", ("shipped", "processing", "delivered", "cancelled")), ("total", "amount")]),
    (("shipment",), ("parcel",), "Where a shipment is right now.",
     [("tracking_id", "code", ("{v}", "tracking {v}"), True)],
     [("location", "city"), ("status", ("in transit", "out for delivery", "delivered"))]),
    (("customer",), ("crm",), "Looks up a customer record.",
     [("customer_id", "code", ("{v}", "customer {v}", "id {v}"), True)],
     [("name", "person"), ("tier", ("gold", "silver", "bronze"))]),
    (("user", "details"), ("account",), "Account details of a user.",
     [("user_name", "username", ("{v}", "user {v}"), True)],
     [("email", "email"), ("status", ("active", "suspended", "pending"))]),
    (("invoice", "total"), ("billing",), "Amount due on an invoice.",
     [("invoice_no", "code", ("invoice {v}", "{v}"), True)],
     [("amount_due", "amount"), ("due", "date")]),
    (("balance",), ("wallet", "card", "savings"), "Current balance of an account.",
     [("account_id", "code", ("account {v}", "{v}"), True)],
     [("balance", "amount"), ("currency", "currency")]),
    (("hotel", "rooms"), ("available",), "Search free hotel rooms.",
     [("destination", "city", ("in {v}",), True), ("arrival", "date", ("from {v}", "on {v}"), True), ("nights", "count", ("for {v} nights",), False)],
     [("hotel", "title"), ("price_per_night", "amount")]),
    (("restaurant",), ("nearby", "top"), "Find a restaurant.",
     [("city", "city", ("in {v}",), True), ("food", ("pizza", "ramen", "tacos", "curry", "burgers", "vegan", "seafood", "dim sum"), ("{v}",), True)],
     [("name", "title"), ("rating", "percent")]),
    (("meeting",), ("team",), "Create a meeting in the calendar.",
     [("subject", "title", ("called {v}", "named {v}", "'{v}'"), True), ("day", "date", ("on {v}",), True), ("at", "time", ("at {v}",), True)],
     [("meeting_id", "code"), ("created", ("true",))]),
    (("message",), ("chat", "slack", "sms"), "Send a message to someone.",
     [("recipient", "first_name", ("to {v}",), True), ("text", "phrase", ("saying '{v}'", "'{v}'"), True)],
     [("delivered", ("true",)), ("message_id", "code")]),
    (("local", "time"), ("world",), "Local time in a time zone.",
     [("tz", "timezone", ("in {v}", "for {v}"), True)],
     [("time", "time")]),
    (("stock", "level"), ("warehouse",), "Units of a product in stock.",
     [("item_code", "sku", ("{v}", "item {v}"), True)],
     [("units", "big_int")]),
    (("translation",), ("text",), "Translate a sentence.",
     [("sentence", "phrase", ("'{v}'",), True), ("language", "lang", ("to {v}", "into {v}"), True)],
     [("translated", ("Hola", "Bonjour", "Hallo", "Ciao", "Ola", "Konnichiwa"))]),
    (("cinema", "times"), ("movie",), "Showtimes at cinemas in a city.",
     [("film", "title", ("{v}",), True), ("town", "city", ("in {v}",), True)],
     [("next_show", "time")]),
    (("pollution", "index"), ("air",), "Pollution index of a city.",
     [("city", "city", ("in {v}", "for {v}"), True)],
     [("index", "big_int"), ("level", ("good", "moderate", "poor"))]),
    (("postal", "code"), ("address",), "City for a postal code.",
     [("postcode", "big_int", ("{v}",), True)],
     [("city", "city")]),
    (("coin", "price"), ("crypto",), "Price of a crypto coin.",
     [("token", "coin", ("{v}",), True)],
     [("usd", "amount")]),
    (("match", "result"), ("football", "league"), "Result of a team's last match.",
     [("club", "title", ("{v}",), True)],
     [("result", ("2-0", "1-1", "0-3", "4-2", "2-1")), ("opponent", "title")]),
    (("delivery", "quote"), ("shipping",), "Shipping price for a parcel.",
     [("kg", "weight", ("{v} kg",), True), ("country", "country_code", ("to {v}",), True)],
     [("price", "amount")]),
    (("staff", "record"), ("hr", "employee"), "HR record of a staff member.",
     [("staff_id", "code", ("{v}", "employee {v}"), True)],
     [("name", "person"), ("team", ("Sales", "Finance", "Legal", "Support", "Platform"))]),
    (("password", "reset"), ("account",), "Start a password reset for a login.",
     [("login", "username", ("{v}", "for {v}"), True)],
     [("sent", ("true",))]),
    (("road", "conditions"), ("traffic",), "Traffic on a road.",
     [("road", "code", ("on {v}",), True)],
     [("delay_min", "count")]),
    (("tickets",), ("support", "open"), "Open tickets of a project.",
     [("project_key", ("WEB", "API", "OPS", "APP", "DATA", "CORE"), ("{v}", "project {v}"), True),
      ("severity", ("low", "medium", "high", "critical"), ("{v} severity", "{v} priority"), False)],
     [("first_ticket", "code"), ("open", "count")]),
    (("item", "cost"), ("catalog",), "Price of a catalog item.",
     [("item_id", "sku", ("{v}", "item {v}"), True)],
     [("price", "amount")]),
    (("trains",), ("next", "rail"), "Next trains between two stations.",
     [("from_station", "city", ("from {v}",), True), ("to_station", "city", ("to {v}",), True)],
     [("departure", "time"), ("platform", "count")]),
    (("domain", "status"), ("dns",), "Whether a domain is registered.",
     [("name", "domain", ("{v}",), True)],
     [("registered", ("true", "false"))]),
    (("country", "stats"), ("world",), "Key figures of a country.",
     [("nation", "country", ("{v}", "of {v}"), True)],
     [("population", "big_int"), ("capital", "city")]),
    (("dish", "recipe"), ("cooking",), "A recipe for a dish.",
     [("meal", ("risotto", "paella", "curry", "pancakes", "chili", "ramen", "goulash"), ("{v}", "for {v}"), True), ("people", "count", ("for {v} people",), False)],
     [("minutes", "big_int")]),
    (("parking", "spaces"), ("garage",), "Free parking spaces.",
     [("lot", "title", ("at {v}", "in {v}"), True)],
     [("free", "big_int")]),
    (("host", "health"), ("server", "node"), "Health of a host.",
     [("host", "host", ("{v}",), True)],
     [("state", ("healthy", "degraded", "down")), ("cpu", "count")]),
    (("commit", "info"), ("repo",), "Details of a commit in a repository.",
     [("repo", "repo", ("in {v}",), True), ("commit", "code", ("{v}", "commit {v}"), True)],
     [("author", "first_name")]),
    (("book", "availability"), ("library",), "Copies of a book on the shelf.",
     [("book_title", "title", ("{v}", "'{v}'"), True)],
     [("copies", "count")]),
    (("appointment",), ("clinic", "next"), "Next appointment of a patient.",
     [("record_id", "code", ("patient {v}", "{v}"), True)],
     [("when", "date"), ("doctor", "person")]),
    (("heating",), ("room",), "Set the heating of a room.",
     [("zone", ("kitchen", "bedroom", "office", "bathroom", "hallway", "garage"), ("the {v}", "in the {v}"), True), ("degrees", "temperature", ("to {v}", "{v} degrees"), True)],
     [("ok", ("true",))]),
    (("gas", "price"), ("fuel",), "Fuel price in a city.",
     [("city", "city", ("in {v}",), True), ("kind", ("diesel", "petrol", "lpg"), ("{v}",), False)],
     [("per_liter", "percent")]),
    (("holidays",), ("public", "bank"), "Public holidays of a country.",
     [("country", "country_code", ("in {v}",), True), ("year", "year", ("in {v}", "for {v}"), True)],
     [("first_holiday", "date")]),
    (("definition",), ("word", "dictionary"), "Meaning of a word.",
     [("term", "word", ("{v}", "'{v}'"), True)],
     [("meaning", ("a small bird", "a kind of stone", "a bright color", "a quiet place"))]),
    (("subscription",), ("plan",), "Cancel or pause a subscription.",
     [("plan_id", "code", ("{v}", "subscription {v}"), True), ("note", "phrase", ("because '{v}'",), False)],
     [("ended", ("true",)), ("refund", "amount")]),
    (("sun", "times"), ("daylight",), "Sunrise and sunset for a city.",
     [("city", "city", ("in {v}",), True), ("day", "date", ("on {v}",), True)],
     [("sunset", "time"), ("sunrise", "time")]),
    (("calories",), ("food", "nutrition"), "Calories in a food.",
     [("item", ("apple", "rice", "bread", "egg", "cheese", "milk", "chicken", "avocado"), ("{v}", "in {v}"), True)],
     [("kcal", "big_int")]),
    (("release",), ("latest", "package"), "Latest release of a software package.",
     [("project", "word", ("{v}",), True)],
     [("version", ("1.4.2", "0.9.1", "3.11.0", "2.0.5", "5.2.7"))]),
    (("car", "rental"), ("available",), "Rental cars for a day.",
     [("city", "city", ("in {v}",), True), ("on", "date", ("on {v}",), True)],
     [("car", ("Ford Focus", "VW Golf", "Kia Ceed", "Tesla Model 3")), ("daily_rate", "amount")]),
    (("opening", "hours"), ("store", "shop"), "When a shop opens and closes.",
     [("shop", "title", ("{v}",), True)],
     [("closes", "time"), ("opens", "time")]),
    (("repo", "stars"), ("github",), "Star count of a repository.",
     [("repo", "repo", ("{v}",), True)],
     [("stars", "big_int")]),
    (("energy", "usage"), ("power", "monthly"), "Energy used in a month.",
     [("meter", "code", ("meter {v}", "{v}"), True), ("period", "month", ("in {v}", "for {v}"), True)],
     [("kwh", "big_int")]),
    (("pets",), ("shelter",), "Pets at a shelter.",
     [("animal", ("dog", "cat", "rabbit", "parrot"), ("{v}s", "{v}"), True), ("city", "city", ("in {v}",), True)],
     [("name", "first_name"), ("age", "count")]),
    (("room", "booking"), ("desk", "office"), "Book a meeting room.",
     [("room", "title", ("{v}", "the {v} room"), True), ("start", "time", ("at {v}",), True)],
     [("booking_id", "code")]),
    (("sales", "tax"), ("vat",), "Sales tax rate of a region.",
     [("region", "state", ("in {v}", "for {v}"), True)],
     [("rate", "percent")]),
    (("episodes",), ("podcast", "show"), "Recent episodes of a show.",
     [("show", "title", ("{v}", "of {v}"), True), ("limit", "count", ("last {v}",), False)],
     [("latest", "title")]),
    (("grades",), ("student",), "Grades of a student.",
     [("student", "code", ("student {v}", "{v}"), True)],
     [("average", "percent")]),
    (("ip", "location"), ("geo",), "Where an IP address is.",
     [("address", "ip", ("{v}",), True)],
     [("city", "city"), ("country", "country")]),
    (("bikes",), ("scooter", "rental"), "Bikes free at a station.",
     [("station", "title", ("at {v}",), True)],
     [("free", "count")]),
    (("vaccines",), ("health",), "Vaccination history of a person.",
     [("name", "person", ("for {v}", "of {v}"), True)],
     [("last", "date")]),
    (("reservation",), ("table",), "Reserve a restaurant table.",
     [("venue", "title", ("at {v}",), True), ("party_size", "count", ("for {v}",), True), ("at", "time", ("at {v}",), True)],
     [("confirmation", "code")]),
    (("loan", "quote"), ("monthly",), "Monthly payment of a loan.",
     [("amount", "amount", ("{v}",), True), ("rate", "percent", ("at {v}%",), True), ("term", "count", ("over {v} years",), True)],
     [("monthly", "amount")]),
    (("distance",), ("driving", "route"), "Driving distance between two cities.",
     [("origin", "city", ("from {v}",), True), ("destination", "city", ("to {v}",), True)],
     [("km", "big_int"), ("hours", "count")]),
    (("population",), ("city",), "Population of a city.",
     [("city", "city", ("of {v}", "in {v}"), True)],
     [("people", "big_int")]),
    (("contact",), ("phone", "email"), "Find a contact by name.",
     [("name", "first_name", ("{v}",), True)],
     [("email", "email"), ("phone", "code")]),
    (("ticket", "status"), ("helpdesk", "bug"), "Status of a ticket.",
     [("ticket_id", "code", ("{v}", "ticket {v}"), True)],
     [("status", ("open", "closed", "in progress", "waiting")), ("assignee", "first_name")]),
    (("deploy",), ("service", "app"), "Deploy a service version.",
     [("service", "word", ("{v}",), True), ("version", ("1.2.0", "2.5.1", "0.3.7", "4.0.0"), ("version {v}", "{v}"), True)],
     [("deployment_id", "code"), ("status", ("started", "queued"))]),
    (("word", "count"), ("document",), "Word count of a document.",
     [("doc_id", "code", ("{v}", "document {v}"), True)],
     [("words", "big_int")]),
]
VERBS_READ = ("get", "fetch", "lookup", "find", "check", "query", "retrieve", "show", "read", "search", "load")
VERBS_WRITE = {"meeting": ("create", "schedule", "add", "new"), "message": ("send", "post", "push"),
               "password": ("start", "request", "trigger", "send"), "heating": ("set", "adjust", "change"),
               "subscription": ("cancel", "end", "stop", "pause"), "room": ("book", "reserve"),
               "reservation": ("make", "create", "book"), "deploy": ("run", "start", "trigger"),
               "hotel": ("search", "find", "list"), "fx": ("run", "do", "compute"),
               "translation": ("make", "get", "do"), "loan": ("calculate", "estimate", "compute")}
DOC_STYLES = ("google", "sphinx", "plain", "none")
NOTES = {"city": "city name, e.g. {e}", "country": "country name", "country_code": "two-letter country code, e.g. {e}",
         "state": "two-letter state code", "currency": "ISO currency code such as {e}",
         "ticker": "stock ticker symbol, e.g. {e}", "coin": "coin symbol", "person": "full name",
         "first_name": "first name", "email": "email address", "username": "login name",
         "code": "the id, e.g. {e}", "date": "date as YYYY-MM-DD", "time": "time as HH:MM",
         "month": "month as YYYY-MM", "year": "four-digit year", "count": "how many",
         "big_int": "the number", "amount": "amount of money", "weight": "weight in kg",
         "percent": "rate in percent", "temperature": "degrees Celsius", "word": "the word",
         "title": "the name", "phrase": "the text", "host": "host name like {e}",
         "repo": "repository as owner/name", "domain": "domain name", "lang": "language code, e.g. {e}",
         "timezone": "IANA time zone like {e}", "ip": "IPv4 address", "flight": "flight number like {e}",
         "sku": "product code, e.g. {e}"}


def _qualified_name(rng: random.Random, subject) -> str:
    words, qualifiers = list(subject[0]), subject[1]
    for _ in range(20):
        head = words[0].split("_")[0]
        verbs = VERBS_WRITE.get(head, VERBS_READ)
        parts = [pick(rng, verbs)]
        if qualifiers and rng.random() < 0.35:
            parts.append(pick(rng, qualifiers))
        parts += words
        if rng.random() < 0.1:
            parts = parts[1:] + [pick(rng, ("lookup", "info", "query", "details"))]
        name = "_".join(parts)
        if name not in HELD_OUT_NAMES:
            return name
    return "_".join(["query"] + words + ["v2"])


def _slot(kind):
    return ("string", None) if isinstance(kind, tuple) else SLOTS[kind]


def make_value(rng: random.Random, kind):
    if isinstance(kind, tuple):
        return pick(rng, kind)
    if kind in WILD and rng.random() < WILD_SHARE:
        return WILD[kind](rng)
    return SLOTS[kind][1](rng)


def function_spec(rng: random.Random, subject) -> tuple[FunctionSpec, str]:
    """-> (spec, docstring style) rendered as `@tool` renders a typed, documented function."""
    name = _qualified_name(rng, subject)
    style = pick(rng, DOC_STYLES)
    props, required = {}, []
    for pname, kind, _, req in subject[3]:
        jtype = _slot(kind)[0]
        prop: dict = {}
        if isinstance(kind, tuple) and rng.random() < 0.7:
            prop["enum"] = list(kind)
        if not req:
            if isinstance(kind, tuple) and rng.random() < 0.5:
                prop["default"] = kind[0]
            else:
                prop["nullable"] = True
        if style != "none" and (style != "plain" or rng.random() < 0.3):
            example = make_value(rng, kind)
            note = NOTES.get(kind, "one of the allowed values") if not isinstance(kind, tuple) else pick(
                rng, ("which one", "the option", f"one of {', '.join(kind[:3])}"))
            prop["description"] = note.format(e=example)
        prop["type"] = jtype
        props[pname] = dict(sorted(prop.items()))
        if req:
            required.append(pname)
    description = subject[2] if style != "none" or rng.random() < 0.5 else ""
    if rng.random() < 0.2:
        description = description.rstrip(".")
    schema = {"properties": props, "required": required, "type": "object"}
    return FunctionSpec(name, description, schema), style


# ---------------------------------------------------------------- phrasing noise

FILLERS_BEFORE = ("", "", "", "", "hey ", "hi, ", "please ", "can you ", "could you ", "quick one: ",
                  "I need to know: ", "ok so ", "yo ", "so ", "pls ", "hello! ")
FILLERS_AFTER = ("", "", "", "", " please", " thanks", " thx", " asap", " for me", " real quick",
                 " if you can", " 谢谢", " :)", "?")


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    choice = rng.randrange(3)
    if choice == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if choice == 1:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def roughen(rng: random.Random, text: str, protected: list[str]) -> str:
    """Real-user noise around the request; the `protected` values stay exact."""
    values = sorted({p for p in protected if p}, key=len, reverse=True)
    for i, value in enumerate(values):  # out of reach of the noise below
        text = text.replace(value, f"\x00{i}\x00")
    if rng.random() < 0.35:
        text = pick(rng, FILLERS_BEFORE) + text[0].lower() + text[1:]
    if rng.random() < 0.3:
        text = text.rstrip(".?!") + pick(rng, FILLERS_AFTER)
    if rng.random() < 0.25:
        text = text.rstrip(".?!")
    words = text.split(" ")
    if rng.random() < 0.15:
        safe = [i for i, w in enumerate(words) if "\x00" not in w]
        if safe:
            i = pick(rng, safe)
            words[i] = typo(rng, words[i])
    if rng.random() < 0.25:
        words = [w if "\x00" in w else w.lower() for w in words]
    text = " ".join(words).strip()
    for i, value in enumerate(values):
        text = text.replace(f"\x00{i}\x00", value)
    return text


# ---------------------------------------------------------------- function tasks

ASK = ("What's the {thing} {args}?", "Get the {thing} {args}.", "Can you check the {thing} {args}?",
       "{thing} {args}", "I'd like the {thing} {args}.", "Look up the {thing} {args}.",
       "Tell me the {thing} {args}.", "Need the {thing} {args}", "Show me the {thing} {args}.",
       "What is the current {thing} {args}?", "Find the {thing} {args}.", "帮我查一下 {thing} {args}",
       "Any info on the {thing} {args}?", "Please fetch the {thing} {args}.")
DO = ("{verb} {args}.", "Please {verb} {args}.", "Can you {verb} {args}?", "I want to {verb} {args}.",
      "{verb} {args} please", "Go ahead and {verb} {args}.")
ACTIONS = {"meeting": "schedule a meeting", "message": "send a message", "password": "reset the password",
           "heating": "set the heating", "subscription": "cancel the subscription", "room": "book a room",
           "reservation": "reserve a table", "deploy": "deploy", "hotel": "find a hotel",
           "fx": "convert", "translation": "translate", "loan": "work out the loan payment"}


def _mention(rng: random.Random, value, templates) -> str:
    shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return pick(rng, templates).format(v=shown)


def _result_text(rng: random.Random, subject, args) -> tuple[str, dict, str]:
    fields = {}
    for key, kind in subject[4]:
        value = make_value(rng, kind)
        if value in ("true", "false"):
            value = value == "true"
        fields[key] = value
    first_key = subject[4][0][0]
    head = fields[first_key]
    shown = ("true" if head else "false") if isinstance(head, bool) else str(head)
    # as @tool returns a dict: the arguments echoed back (sometimes), then the fields
    result = {**({k: v for k, v in list(args.items())[:1]} if rng.random() < 0.5 else {}), **fields}
    return json.dumps(result, ensure_ascii=False), fields, shown  # as @tool writes it


def function_task(rng: random.Random, effort: str) -> Task:
    chosen = rng.sample(SUBJECTS, rng.choice((1, 2, 2, 3, 3, 4, 5)))
    target = chosen[0]
    specs = [function_spec(rng, s)[0] for s in chosen]
    spec = specs[0]
    rng.shuffle(specs)
    args, mentions, protected = {}, [], []
    for pname, kind, says, req in target[3]:
        if not req and rng.random() < 0.5:
            continue
        value = make_value(rng, kind)
        args[pname] = value
        mentions.append(_mention(rng, value, says))
        protected.append(str(value))
    head = target[0][0]
    thing = " ".join(target[0]).replace("_", " ")
    arg_text = " ".join(mentions)
    if head in ACTIONS and rng.random() < 0.7:
        user = pick(rng, DO).format(verb=ACTIONS[head], args=arg_text)
    else:
        user = pick(rng, ASK).format(thing=thing, args=arg_text).replace("  ", " ")
    user = user[0].upper() + user[1:]
    user = roughen(rng, user, protected)
    output, fields, shown = _result_text(rng, target, args)
    arguments = json.dumps(args, ensure_ascii=False)
    name = spec.name
    listed = ", ".join(s.name for s in specs)
    pairs = ", ".join(f"{k}={v}" for k, v in args.items())
    low = (f"Call {name} with {pairs}.", f"Use {name}.", f"{name}: {pairs}.")
    medium = ((f"The user wants the {thing}.", f"They ask about the {thing} {arg_text}."),
              (f"{name} fits; pass {pairs}.", f"I'll call {name} with {pairs}."))
    high = ((f"The user asks: {user}", f"Request: the {thing} {arg_text}."),
            (f"Available functions: {listed}.", f"{name} is the one for the {thing}.",
             f"Arguments: {pairs}.", "Copy each value exactly as the user wrote it.",
             "The other functions do not fit.", "No need for python here."),
            (f"Call {name}.", f"Let me call {name} now."))
    analysis = _analysis(rng, effort, low, medium, high)
    extra = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in list(fields.items())[1:])
    after = [] if effort == "low" else [pick(rng, (
        f"The result: {shown}.", f"{name} returned {shown}.", f"It says {list(fields)[0].replace('_', ' ')} is {shown}."))]
    finals = [f"The {thing} {arg_text} is {shown}.", f"{shown}.", f"It is {shown}" + (f" ({extra})." if extra else "."),
              f"Here you go: {list(fields)[0].replace('_', ' ')} {shown}" + (f", {extra}." if extra else ".")]
    if head in ACTIONS:
        finals += [f"Done: {list(fields)[0].replace('_', ' ')} {shown}.", f"All set ({shown})."]
    final = pick(rng, finals)
    return Task("function", effort, user, functions=specs, recipient=f"functions.{name}",
                arguments=arguments, call_args=args, tool_output=output, answer=shown,
                analysis=analysis, after=after, final=final)


def _analysis(rng, effort, low, medium, high) -> list[str]:
    from agent.model.nano.tasks import _analysis as shared
    return shared(rng, effort, low, medium, high)


# ---------------------------------------------------------------- python tasks

def _num(rng: random.Random) -> int:
    digits = rng.choice((1, 2, 2, 3, 3, 4, 4, 5, 6))
    return rng.randint(10 ** (digits - 1) if digits > 1 else 1, 10 ** digits - 1)


def _dec(rng: random.Random) -> str:
    return f"{rng.randint(0, 999)}.{rng.randint(1, 99)}".rstrip("0").rstrip(".") if rng.random() < 0.8 else f"{rng.randint(1, 99)}.5"


def _arith(rng: random.Random) -> tuple[str, str]:
    """-> (code, what the user types)."""
    k = rng.randrange(22)
    a, b = _num(rng), _num(rng)
    if k < 6:
        op, words = pick(rng, (("+", ("+", "plus", "and")), ("-", ("-", "minus")),
                               ("*", ("*", "x", "times", "×", "multiplied by"))))
        w = pick(rng, words)
        return f"print({a} {op} {b})", pick(rng, (f"{a} {w} {b}", f"{a}{w}{b}" if len(w) == 1 else f"{a} {w} {b}"))
    if k == 6:
        return f"print({a} + {b})", pick(rng, (f"add {a} and {b}", f"the sum of {a} and {b}", f"{a} added to {b}"))
    if k == 7:
        return f"print({a} - {b})", pick(rng, (f"take {b} away from {a}", f"{a} less {b}", f"subtract {b} from {a}"))
    if k == 8:
        return f"print({a} * {b})", pick(rng, (f"multiply {a} by {b}", f"the product of {a} and {b}", f"{a} multiplied by {b}"))
    if k == 9:
        b = rng.randint(2, 999)
        return f"print({a} / {b})", pick(rng, (f"{a} / {b}", f"{a} divided by {b}", f"divide {a} by {b}"))
    if k == 10:
        b = rng.randint(2, 99)
        return f"print({a} % {b})", pick(rng, (f"{a} mod {b}", f"the remainder of {a} divided by {b}", f"{a} % {b}"))
    if k == 11:
        b = rng.randint(2, 99)
        return f"print({a} // {b})", pick(rng, (f"{a} // {b}", f"{a} integer-divided by {b}", f"floor of {a} / {b}"))
    if k == 12:
        x, e = rng.randint(2, 40), rng.randint(2, 9)
        ord_ = {2: "2nd", 3: "3rd"}.get(e, f"{e}th")
        return f"print({x} ** {e})", pick(rng, (f"{x} ** {e}", f"{x} to the power of {e}", f"{x}^{e}",
                                                 f"{x} to the {ord_} power", f"{x} raised to {e}"))
    if k == 13:
        x = rng.randint(2, 99)
        return (f"print({x} ** 2)", pick(rng, (f"{x} squared", f"the square of {x}"))) if rng.random() < 0.6 else \
            (f"print({x} ** 3)", pick(rng, (f"{x} cubed", f"the cube of {x}")))
    if k == 14:
        x = rng.randint(2, 200) ** 2 if rng.random() < 0.6 else _num(rng)
        return f"import math\nprint(math.sqrt({x}))", pick(rng, (f"the square root of {x}", f"sqrt({x})", f"sqrt of {x}"))
    if k == 15:
        n = rng.randint(2, 20)
        return f"import math\nprint(math.factorial({n}))", pick(rng, (f"{n} factorial", f"{n}!", f"the factorial of {n}"))
    if k == 16:
        n = rng.randint(3, 60)
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10 if n % 100 not in (11, 12, 13) else 0, "th")
        return ("a, b = 0, 1\nfor _ in range(" + str(n) + "):\n    a, b = b, a + b\nprint(a)",
                pick(rng, (f"the {n}{suffix} Fibonacci number", f"fibonacci number {n}", f"fib({n})")))
    if k == 17:
        lo, hi = rng.choice((1, 1, 1, rng.randint(2, 50))), rng.randint(10, 5000)
        return f"print(sum(range({lo}, {hi} + 1)))", pick(rng, (
            f"the sum of the integers from {lo} to {hi}", f"the sum of all numbers between {lo} and {hi} inclusive",
            f"{lo} + {lo + 1} + ... + {hi}", f"the total of {lo} through {hi}"))
    if k == 18:
        p = pick(rng, (5, 8, 10, 12.5, 15, 18, 20, 25, 30, 33, 40, 50, 75))
        x = _num(rng) if rng.random() < 0.7 else _dec(rng)
        return f"print({p} / 100 * {x})", pick(rng, (f"{p}% of {x}", f"{p} percent of {x}"))
    if k == 19:
        xs = [_num(rng) % 1000 for _ in range(rng.randint(3, 5))]
        shown = ", ".join(map(str, xs[:-1])) + " and " + str(xs[-1])
        if rng.random() < 0.5:
            return f"print(sum([{', '.join(map(str, xs))}]))", pick(rng, (f"the sum of {shown}", f"{' + '.join(map(str, xs))}", f"add up {shown}"))
        return f"print(sum([{', '.join(map(str, xs))}]) / {len(xs)})", pick(rng, (f"the average of {shown}", f"the mean of {shown}"))
    if k == 20:
        n, price = rng.randint(2, 40), _dec(rng)
        return f"print({n} * {price})", pick(rng, (f"the cost of {n} tickets at {price} each",
                                                     f"{n} items at {price} apiece in total",
                                                     f"the total for {n} boxes costing {price} each"))
    c1, c2 = _dec(rng), _dec(rng)
    op = pick(rng, ("+", "-", "*"))
    c = rng.randint(2, 30)
    return pick(rng, ((f"print({c1} {op} {c2})", f"{c1} {op} {c2}"),
                      (f"print(({a} + {b}) * {c})", f"({a} + {b}) * {c}"),
                      (f"print(({a} - {b}) / {c})", f"({a} - {b}) / {c}")))


ARITH_ASK = ("What is {e}?", "what's {e}", "{e} = ?", "calculate {e}", "Compute {e} for me.",
             "How much is {e}?", "{e}?", "Work out {e}.", "what do you get for {e}",
             "quick math: {e}", "I need {e}", "计算 {e}", "{e} 等于多少", "solve {e} please",
             "Can you figure out {e}?", "tell me {e}", "what does {e} equal")


def arithmetic_task(rng: random.Random, effort: str) -> Task:
    code, shown = _arith(rng)
    out = run_python(code)
    if len(out) > 40:  # astronomically large results are not what people ask for
        return arithmetic_task(rng, effort)
    user = roughen(rng, pick(rng, ARITH_ASK).format(e=shown), [shown])
    analysis = _analysis(
        rng, effort,
        (f"Compute {shown} in python.", "Use python.", f"python: {code.splitlines()[-1]}"),
        ((f"The user asks for {shown}.", f"We need {shown}."),
         ("Run it in python for an exact result.", "I'll compute it with python.")),
        ((f"The user asks: {user}", f"We need the value of {shown}."),
         ("Doing it in my head risks a wrong digit.", "python gives the exact value.",
          f"The code: {code.splitlines()[-1]}", "Print the result and report it as printed."),
         ("Call python.", "Run it now.")))
    return _python_task("arithmetic", effort, user, code, out, analysis, shown, rng)


def _python_task(category, effort, user, code, out, analysis, shown, rng) -> Task:
    after = [] if effort == "low" else [pick(rng, (f"python printed {out}.", f"The output is {out}.", f"Result: {out}."))]
    final = pick(rng, (f"{shown} = {out}", f"The answer is {out}.", f"{out}", f"It's {out}.",
                       f"The result is **{out}**.", f"That comes to {out}."))
    return Task(category, effort, user, recipient="python", arguments=code, tool_output=out,
                answer=out, analysis=analysis, after=after, final=final)


# (unit names users type, canonical name, factor or formula in x)
LENGTH_ETC = [
    (("km", "kilometers", "kilometres", "公里"), ("mi", "miles", "英里"), "{x} * 0.621371"),
    (("mi", "miles", "mile"), ("km", "kilometers", "kilometres"), "{x} * 1.609344"),
    (("kg", "kilograms", "kilos", "公斤"), ("lb", "lbs", "pounds", "磅"), "{x} * 2.204623"),
    (("lb", "lbs", "pounds"), ("kg", "kilograms", "kilos"), "{x} * 0.453592"),
    (("m", "meters", "metres"), ("ft", "feet"), "{x} / 0.3048"),
    (("ft", "feet", "foot"), ("m", "meters", "metres"), "{x} * 0.3048"),
    (("ft", "feet"), ("cm", "centimeters"), "{x} * 30.48"),
    (("in", "inches", "inch"), ("cm", "centimeters", "centimetres"), "{x} * 2.54"),
    (("cm", "centimeters"), ("in", "inches"), "{x} / 2.54"),
    (("m", "meters"), ("in", "inches"), "{x} * 100 / 2.54"),
    (("L", "liters", "litres"), ("gal", "gallons", "US gallons"), "{x} / 3.785412"),
    (("gal", "gallons", "US gallons"), ("L", "liters", "litres"), "{x} * 3.785412"),
    (("°C", "C", "celsius", "Celsius", "degrees C", "摄氏度"), ("°F", "F", "fahrenheit", "Fahrenheit"), "{x} * 9 / 5 + 32"),
    (("°F", "F", "fahrenheit", "Fahrenheit", "degrees F"), ("°C", "C", "celsius", "Celsius"), "({x} - 32) * 5 / 9"),
    (("g", "grams"), ("oz", "ounces"), "{x} / 28.349523"),
    (("oz", "ounces"), ("g", "grams"), "{x} * 28.349523"),
    (("mph",), ("km/h", "kph"), "{x} * 1.609344"),
    (("km/h", "kph"), ("mph",), "{x} / 1.609344"),
    (("hours", "hrs", "h"), ("minutes", "mins"), "{x} * 60"),
    (("minutes", "mins"), ("hours",), "{x} / 60"),
    (("minutes",), ("seconds", "secs"), "{x} * 60"),
    (("seconds", "secs"), ("hours",), "{x} / 3600"),
    (("seconds",), ("minutes",), "{x} / 60"),
    (("days",), ("hours",), "{x} * 24"),
    (("hours",), ("days",), "{x} / 24"),
    (("weeks",), ("days",), "{x} * 7"),
    (("GB", "gigabytes"), ("MB", "megabytes"), "{x} * 1024"),
    (("MB", "megabytes"), ("KB", "kilobytes"), "{x} * 1024"),
    (("KB", "kilobytes"), ("bytes",), "{x} * 1024"),
    (("TB",), ("GB",), "{x} * 1024"),
    (("m", "meters"), ("km",), "{x} / 1000"),
    (("km",), ("m", "meters"), "{x} * 1000"),
    (("acres",), ("hectares",), "{x} * 0.404686"),
    (("hectares",), ("acres",), "{x} / 0.404686"),
]
UNIT_ASK = ("Convert {v} {a} to {b}", "How many {b} is {v} {a}?", "what is {v} {a} in {b}",
            "{v} {a} in {b}?", "{v} {a} to {b}", "how many {b} are in {v} {a}", "{v}{a} in {b}",
            "change {v} {a} into {b}", "Express {v} {a} in {b}.", "把 {v} {a} 换算成 {b}",
            "{v} {a} 是多少 {b}", "I have {v} {a}, how much is that in {b}?", "convert {v} {a} -> {b}")


def unit_task(rng: random.Random, effort: str) -> Task:
    froms, tos, formula = pick(rng, LENGTH_ETC)
    a, b = pick(rng, froms), pick(rng, tos)
    v = str(rng.randint(1, 500)) if rng.random() < 0.6 else _dec(rng)
    if "32" in formula:  # temperatures: whole degrees, below zero too
        v = str(rng.randint(-40, 220))
    expr = formula.format(x=v)
    code = f"print(round({expr}, 3))" if rng.random() < 0.8 else f"x = {v}\nprint(round({formula.format(x='x')}, 3))"
    out = run_python(code)
    shown = f"{v} {a}"
    user = roughen(rng, pick(rng, UNIT_ASK).format(v=v, a=a, b=b), [v])
    analysis = _analysis(
        rng, effort,
        (f"{a} to {b}: {expr}.", "Use python for the conversion.", f"Convert with python: {expr}."),
        ((f"Convert {v} {a} to {b}.", f"A unit conversion: {a} to {b}."),
         (f"The formula is {formula.format(x='x')}.", "Let python do the arithmetic.")),
        ((f"The user asks: {user}", f"This converts {a} to {b}."),
         (f"The formula is {formula.format(x='x')} with x = {v}.", "Round to 3 decimals.",
          "A wrong factor would give a wrong answer.", f"So compute {expr}."),
         ("Call python.", "Run it.")))
    after = [] if effort == "low" else [pick(rng, (f"python printed {out}.", f"So {v} {a} = {out} {b}."))]
    final = pick(rng, (f"{v} {a} is {out} {b}.", f"{v} {a} = {out} {b}", f"That's {out} {b}.",
                       f"About {out} {b}.", f"{out} {b}"))
    return Task("unit", effort, user, recipient="python", arguments=code, tool_output=out, answer=out,
                analysis=analysis, after=after, final=final)


STRING_WORDS = WORDS + ("banana cherry orange strawberry blueberry raspberry pineapple coconut "
                        "elephant giraffe octopus butterfly penguin dolphin kangaroo alligator "
                        "chocolate spaghetti broccoli cucumber mushroom tomato potato avocado "
                        "computer keyboard internet software database algorithm function variable "
                        "mountain volcano thunder rainbow hurricane sunshine waterfall lighthouse "
                        "beautiful wonderful adventure important question different together "
                        "library hospital restaurant university airport museum stadium bakery").split()
STRING_KINDS = (
    ("{s!r}[::-1]", ("reverse {q}", "{q} backwards", "what is {q} reversed", "write {q} in reverse", "把 {q} 倒过来")),
    ("len({s!r})", ("how many characters in {q}", "length of {q}", "how long is the string {q}", "count the letters of {q}", "{q} 有几个字母")),
    ("{s!r}.upper()", ("uppercase {q}", "{q} in capital letters", "make {q} all caps", "convert {q} to upper case")),
    ("{s!r}.lower()", ("lowercase {q}", "{q} in small letters", "convert {q} to lower case")),
    ("{s!r}.title()", ("title-case {q}", "capitalize every word of {q}")),
    ("{s!r}.capitalize()", ("capitalize the first letter of {q}", "make the first letter of {q} uppercase")),
    ("{s!r}.count({c!r})", ("how many {c}'s in {q}", "count the {c} in {q}", "how often does {c} appear in {q}",
                            "number of times the letter {c} occurs in {q}")),
    ("sum(ch in 'aeiou' for ch in {s!r})", ("how many vowels in {q}", "count the vowels of {q}")),
    ("''.join(sorted({s!r}))", ("sort the letters of {q}", "{q} with its letters in alphabetical order")),
    ("len(set({s!r}))", ("how many distinct letters in {q}", "number of different characters in {q}")),
    ("{s!r}[:{n}]", ("first {n} letters of {q}", "the first {n} characters of {q}")),
    ("{s!r}[-{n}:]", ("last {n} letters of {q}", "the final {n} characters of {q}")),
    ("{s!r}.replace({c!r}, {d!r})", ("replace {c} with {d} in {q}", "swap every {c} for {d} in {q}")),
    ("{s!r} == {s!r}[::-1]", ("is {q} a palindrome", "does {q} read the same backwards")),
    ("{s!r} * {n}", ("repeat {q} {n} times", "{q} written {n} times in a row")),
    ("len({s!r}.split())", ("how many words in {q}", "word count of {q}")),
    ("{s!r}.replace(' ', '')", ("remove the spaces from {q}", "{q} without spaces")),
)


def string_task(rng: random.Random, effort: str) -> Task:
    r = rng.random()
    s = pick(rng, STRING_WORDS) if r < 0.6 else " ".join(pick(rng, STRING_WORDS) for _ in range(rng.randint(2, 4)))
    if rng.random() < WILD_SHARE:
        s = wild_word(rng, 2, 14) if r < 0.6 else " ".join(wild_word(rng, 1, 8) for _ in range(rng.randint(2, 4)))
    if rng.random() < 0.15:
        s = s.capitalize() if rng.random() < 0.5 else s.upper()
    template, asks = pick(rng, STRING_KINDS)
    letters = [ch for ch in s if ch.isalpha()]
    c = pick(rng, letters).lower() if letters else "a"
    d = pick(rng, "aeiouxyz")
    n = rng.randint(2, 4)
    expr = template.format(s=s, c=c, d=d, n=n)
    code = f"print({expr})"
    out = run_python(code)
    q = pick(rng, (f"'{s}'", f'"{s}"', s if " " not in s else f"'{s}'", f"the word {s}" if " " not in s else f"'{s}'"))
    user = pick(rng, asks).format(q=q, c=c, d=d, n=n)
    user = roughen(rng, user[0].upper() + user[1:] + pick(rng, ("?", "", ".", "")), [s, c])
    spelled = " ".join(s.replace(" ", "_"))
    analysis = _analysis(
        rng, effort,
        (f"The string is '{s}'. Use python.", "Use python.", f"'{s}': python."),
        ((f"The string is '{s}', spelled {spelled}.", f"The text is '{s}'."),
         ("I'll do it in python.", "python avoids letter mistakes.")),
        ((f"The user asks: {user}", f"The input is '{s}'."),
         (f"Spelled out: {spelled}.", "Counting letters by eye is error-prone.",
          f"The code: {code}", "Copy the string exactly, spaces included."),
         ("Call python.", "Run it.")))
    # a string result starts a line, so it has the same tokens as the tool's output
    after = [] if effort == "low" else [pick(rng, (f"python printed:\n{out}", f"The output is:\n{out}"))]
    final = pick(rng, (f"{out}", f"The answer is:\n{out}", f"Result:\n{out}", f"Here it is:\n{out}"))
    return Task("string", effort, user, recipient="python", arguments=code, tool_output=out,
                answer=out, analysis=analysis, after=after, final=final)


# ---------------------------------------------------------------- direct answers

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Norway": "Oslo", "Peru": "Lima", "Egypt": "Cairo",
            "Germany": "Berlin", "Spain": "Madrid", "Canada": "Ottawa", "Australia": "Canberra",
            "Kenya": "Nairobi", "Italy": "Rome", "Austria": "Vienna", "Ireland": "Dublin",
            "Portugal": "Lisbon", "Greece": "Athens", "Poland": "Warsaw", "Sweden": "Stockholm",
            "Finland": "Helsinki", "Chile": "Santiago", "Mexico": "Mexico City", "India": "New Delhi",
            "China": "Beijing", "Brazil": "Brasilia", "Argentina": "Buenos Aires", "Turkey": "Ankara",
            "Denmark": "Copenhagen", "Netherlands": "Amsterdam", "Belgium": "Brussels",
            "Switzerland": "Bern", "Hungary": "Budapest", "Thailand": "Bangkok", "Vietnam": "Hanoi",
            "South Korea": "Seoul", "Nigeria": "Abuja", "Ghana": "Accra", "Morocco": "Rabat",
            "Colombia": "Bogota", "Iceland": "Reykjavik", "Ukraine": "Kyiv", "Romania": "Bucharest"}
CAPITAL_ASK = ("capital of {c}?", "What's {c}'s capital?", "Name the capital of {c}.",
               "{c} capital", "what city is the capital of {c}", "Which is the capital city of {c}?",
               "{c} 的首都是哪里", "do you know the capital of {c}?", "the capital of {c} please")
CHAT = (
    (("hey", "hello!", "hi there", "hiya", "good afternoon", "good evening", "morning!", "你好", "heya", "hello hello"),
     ("Hello! How can I help you today?", "Hi! What can I do for you?", "Hey! How can I help?")),
    (("thanks", "thank you!", "thanks a bunch", "many thanks", "cheers", "thx", "great, thanks", "谢谢", "ty", "perfect, thank you"),
     ("You're welcome!", "Glad I could help!", "Happy to help!")),
    (("bye", "goodbye", "see you", "that's all, bye", "later!", "再见"),
     ("Goodbye! Take care.", "Bye! Have a great day.")),
    (("who are you", "what are you?", "are you a bot?", "who am i chatting with", "what's your name", "你是谁"),
     ("I'm a small assistant model. I can run python and call your tools.",
      "I'm an AI assistant: I answer questions, run python and call tools.")),
    (("what can you do", "how can you help me", "what are you able to do?", "help", "what do you do"),
     ("I can answer questions, run python for math and text, and call the tools you give me.",
      "I can help with calculations, conversions and text through python, and call your tools.")),
    (("how are you", "how's it going", "how are you doing today?", "you ok?"),
     ("I'm doing well, thanks! How can I help?", "All good here. What can I do for you?")),
)


def direct_task(rng: random.Random, effort: str) -> Task:
    if rng.random() < 0.5:
        country = pick(rng, sorted(CAPITALS))
        user = roughen(rng, pick(rng, CAPITAL_ASK).format(c=country), [country])
        answer = CAPITALS[country]
        final = pick(rng, (f"The capital of {country} is {answer}.", f"{answer}.", f"It's {answer}."))
        topic = f"the capital of {country}"
    else:
        asks, replies = pick(rng, CHAT)
        user = pick(rng, asks)
        user = user.capitalize() if rng.random() < 0.4 else user
        final = pick(rng, replies)
        answer, topic = final, "small talk"
    analysis = _analysis(
        rng, effort, ("Answer directly.", "No tool needed.", "Reply directly."),
        ((f"The user asks about {topic}.", "Simple message."),
         ("No tool is needed.", "I can answer directly.")),
        ((f"The user says: {user}", f"This is about {topic}."),
         ("No python is needed.", "None of the functions apply.", "I know this.", "Keep it short."),
         ("Answer now.", "Reply.")))
    return Task("direct", effort, user, answer=answer, analysis=analysis, final=final)


BUILDERS = {"arithmetic": arithmetic_task, "unit": unit_task, "string": string_task,
            "function": function_task, "direct": direct_task}


def random_task(rng: random.Random, category: str | None = None, effort: str | None = None,
                with_functions: bool | None = None) -> Task:
    from agent.model.nano.tasks import EFFORTS
    if with_functions is None:
        with_functions = rng.random() < 0.6
    if category is None:
        if with_functions:
            category = "function" if rng.random() < 0.6 else pick(rng, ("arithmetic", "unit", "string", "direct"))
        else:
            category = rng.choices(("arithmetic", "unit", "string", "direct"), (0.36, 0.24, 0.24, 0.16))[0]
    task = BUILDERS[category](rng, effort or pick(rng, EFFORTS))
    if category != "function" and with_functions:
        task.functions = [function_spec(rng, s)[0] for s in rng.sample(SUBJECTS, rng.choice((1, 2, 3)))]
    return task


# ---------------------------------------------------------------- sessions whose turns depend

INTRODUCE = ("My name is {n}.", "I'm {n}.", "Hi, I am {n}.", "call me {n}", "hello, {n} here",
             "Hey there, my name's {n}!", "this is {n}", "You can call me {n}.")
INTRODUCED = ("Nice to meet you, {n}! How can I help?", "Hello {n}! What can I do for you?",
              "Hi {n}, how can I help you today?")
RECALL = ("What is my name?", "what's my name?", "Do you remember my name?", "who am I?",
          "what did I say my name was", "Tell me my name.", "what am I called?")
FOLLOW_OPS = (("+", ("add {n} to that", "plus {n}?", "now add {n}", "and {n} more?", "that + {n}")),
              ("-", ("subtract {n} from that", "minus {n}?", "now take away {n}", "that - {n}")),
              ("*", ("multiply that by {n}", "times {n}?", "now double it" , "that * {n}",
                     "and multiplied by {n}?")),
              ("/", ("divide that by {n}", "and divided by {n}?", "now halve it", "that / {n}")))


def follow_up(rng: random.Random, effort: str) -> list[Task]:
    """A session whose last turn needs an earlier one (a name given before, "add 6 to that"):
    the earlier turns, then the one to learn."""
    from agent.model.nano.tasks import EFFORTS
    if rng.random() < 0.5:
        name = pick(rng, FIRST) if rng.random() < 0.5 else WILD["first_name"](rng)
        intro = pick(rng, INTRODUCED).format(n=name)
        first = Task("direct", pick(rng, EFFORTS), pick(rng, INTRODUCE).format(n=name),
                     answer=name, analysis=[f"The user's name is {name}."], final=intro)
        user = pick(rng, RECALL)
        analysis = _analysis(
            rng, effort, (f"They said their name is {name}.", f"Name: {name}."),
            ((f"Earlier the user said their name is {name}.", "They introduced themselves."),
             ("Answer from the conversation.", "No tool needed.")),
            ((f"The user asks: {user}", f"Earlier: \"{first.user}\"."),
             (f"So the name is {name}.", "No tool is needed."), ("Answer.",)))
        last = Task("direct", effort, user, answer=name, analysis=analysis,
                    final=pick(rng, (f"Your name is {name}.", f"You're {name}.", f"{name}.",
                                     f"You told me your name is {name}.")))
        return [first, last]
    first = arithmetic_task(rng, pick(rng, EFFORTS))
    value = first.tool_output
    if not value.lstrip("-").replace(".", "", 1).isdigit() or len(value) > 15:
        return follow_up(rng, effort)
    op, asks = pick(rng, FOLLOW_OPS)
    ask = pick(rng, asks)
    n = 2 if ("double" in ask or "halve" in ask) else rng.randint(2, 999)
    code = f"print({value} {op} {n})"
    out = run_python(code)
    user = ask.format(n=n)
    analysis = _analysis(
        rng, effort, (f"The last result was {value}; compute {value} {op} {n}.", f"python: {code}"),
        ((f"\"That\" is the previous result, {value}.", f"The user refers to {value}."),
         (f"Compute {value} {op} {n} in python.",)),
        ((f"The user asks: {user}", f"Their previous answer was {value}."),
         (f"So compute {value} {op} {n}.", "python keeps it exact."), ("Call python.",)))
    return [first, _python_task("arithmetic", effort, user, code, out, analysis,
                                f"{value} {op} {n}", rng)]
