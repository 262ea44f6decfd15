"""Developer functions for the hand-written nano evaluation (tests/data/nano_eval.jsonl).

Written the way developers write tools: typed signatures, docstrings in the common styles
(Google `Args:`, Sphinx `:param:`, a bare summary), defaults and enums. Each returns a fixed,
made-up result, so the answer a task expects is known. None of these names occurs in the
training generator (model/nano/realistic.py keeps them out; tests/nano checks it).
"""
from __future__ import annotations

from typing import Literal, Optional


def get_stock_quote(symbol: str) -> dict:
    """Latest trading price for a stock ticker.

    Args:
        symbol: ticker symbol, e.g. AAPL
    """
    return {"symbol": symbol, "price": 187.44, "currency": "USD"}


def lookup_flight(flight_number: str, date: Optional[str] = None) -> dict:
    """Look up the status of a flight.

    Args:
        flight_number: airline code and number, e.g. LH456
        date: departure date as YYYY-MM-DD (default: today)
    """
    return {"flight": flight_number, "status": "delayed", "gate": "B22"}


def convert_money(amount: float, from_currency: str, to_currency: str) -> str:
    """Convert an amount of money from one currency to another.

    :param amount: the amount to convert
    :param from_currency: ISO 4217 code of the source currency
    :param to_currency: ISO 4217 code of the target currency
    """
    return f"{amount:g} {from_currency} = 93.70 {to_currency}"


def get_current_weather(location: str, units: Literal["metric", "imperial"] = "metric") -> dict:
    """Get the current weather conditions for a location.

    Args:
        location: city name
        units: unit system for the temperature
    """
    return {"location": location, "temp": 14, "conditions": "light rain"}


def search_contacts(query: str, limit: int = 5) -> list:
    """Search the address book.

    Args:
        query: part of a name or email
        limit: maximum number of matches
    """
    return [{"name": "Maria Lopez", "email": "maria.lopez@example.com"}]


def get_order_status(order_id: str) -> dict:
    """Return the shipping status of a customer order.

    Args:
        order_id: the order number, like A-10442
    """
    return {"order_id": order_id, "status": "shipped", "eta": "2026-12-04"}


def track_package(tracking_number: str, carrier: Literal["ups", "fedex", "dhl", "usps"] = "ups") -> dict:
    """Track a parcel.

    :param tracking_number: the carrier's tracking code
    :param carrier: which carrier shipped it
    """
    return {"tracking_number": tracking_number, "location": "Memphis hub", "status": "in transit"}


def get_exchange_rate(base: str, quote: str) -> float:
    """Current exchange rate between two currencies (units of quote per base)."""
    return 1.0842


def find_restaurants(city: str, cuisine: str, max_results: int = 3) -> list:
    """Find restaurants in a city.

    Args:
        city: where to search
        cuisine: type of food, e.g. sushi, thai
        max_results: how many to return
    """
    return [{"name": "Blue Lotus", "rating": 4.6}]


def get_user_profile(user_id: int) -> dict:
    """Fetch a user's profile by numeric id.

    Args:
        user_id: the account id
    """
    return {"user_id": user_id, "name": "Kenji Sato", "plan": "premium"}


def create_calendar_event(title: str, date: str, start_time: str, duration_minutes: int = 60) -> dict:
    """Create an event in the user's calendar.

    Args:
        title: short title of the event
        date: day of the event, YYYY-MM-DD
        start_time: start time, HH:MM (24h)
        duration_minutes: length of the event
    """
    return {"event_id": "evt_5521", "created": True}


def send_email(to: str, subject: str, body: str) -> dict:
    """Send an email.

    :param to: recipient address
    :param subject: subject line
    :param body: plain-text body
    """
    return {"message_id": "msg-8812", "sent": True}


def get_time_in_timezone(timezone: str) -> str:
    """Current local time in an IANA timezone such as Asia/Tokyo."""
    return "22:15"


def check_inventory(sku: str, warehouse: str = "main") -> dict:
    """How many units of a product are in stock.

    Args:
        sku: product stock-keeping unit code
        warehouse: warehouse name
    """
    return {"sku": sku, "quantity": 342}


def get_account_balance(account_number: str) -> dict:
    """Return the current balance of a bank account.

    Args:
        account_number: the account number
    """
    return {"account_number": account_number, "balance": 2481.93, "currency": "EUR"}


def translate_text(text: str, target_language: str) -> str:
    """Translate text into another language.

    Args:
        text: the text to translate
        target_language: language code such as es, fr, de
    """
    return "Hola, mundo"


def get_movie_showtimes(movie: str, city: str) -> list:
    """List today's showtimes for a movie in a city.

    Args:
        movie: movie title
        city: city name
    """
    return ["18:30", "21:10"]


def book_hotel(city: str, check_in: str, nights: int, guests: int = 1) -> dict:
    """Reserve a hotel room.

    Args:
        city: destination city
        check_in: arrival date, YYYY-MM-DD
        nights: number of nights
        guests: number of guests
    """
    return {"confirmation": "HX-30317", "total_price": 412.5}


def get_air_quality(city: str) -> dict:
    """Air quality index (AQI) for a city."""
    return {"city": city, "aqi": 42, "category": "good"}


def lookup_zip_code(zip_code: str) -> dict:
    """Return the city and state for a US ZIP code.

    Args:
        zip_code: five-digit ZIP code
    """
    return {"zip": zip_code, "city": "Beverly Hills", "state": "CA"}


def get_crypto_price(coin: str, currency: str = "USD") -> dict:
    """Current price of a cryptocurrency.

    Args:
        coin: coin symbol, e.g. BTC or ETH
        currency: fiat currency for the price
    """
    return {"coin": coin, "price": 64210.5}


def get_sports_score(team: str) -> dict:
    """Score of the most recent game played by a team.

    Args:
        team: team name
    """
    return {"team": team, "score": "3-1", "opponent": "Rivals FC"}


def calculate_shipping_cost(weight_kg: float, destination_country: str) -> dict:
    """Estimate the shipping cost of a parcel.

    Args:
        weight_kg: parcel weight in kilograms
        destination_country: two-letter country code
    """
    return {"cost": 23.8, "currency": "USD"}


def get_employee_info(employee_id: str) -> dict:
    """Look up an employee in the HR directory.

    :param employee_id: staff id such as E1024
    """
    return {"employee_id": employee_id, "name": "Priya Nair", "department": "Finance"}


def reset_password(username: str) -> dict:
    """Send a password-reset link to a user.

    Args:
        username: login name of the user
    """
    return {"username": username, "reset_sent": True}


def get_traffic_info(route: str) -> dict:
    """Current traffic on a road or route.

    Args:
        route: highway or road name, e.g. I-95
    """
    return {"route": route, "delay_minutes": 18}


def list_open_tickets(project: str, priority: Literal["low", "medium", "high"] = "high") -> list:
    """List open support tickets for a project.

    Args:
        project: project key, e.g. WEB
        priority: only tickets of this priority
    """
    return [{"id": "WEB-311", "title": "Login page times out"}]


def get_product_price(product_id: str) -> dict:
    """Price of a product in the online store.

    Args:
        product_id: catalog id of the product
    """
    return {"product_id": product_id, "price": 59.99}


def get_train_schedule(origin: str, destination: str) -> list:
    """Next trains between two stations.

    Args:
        origin: departure station
        destination: arrival station
    """
    return [{"departs": "14:05", "arrives": "15:52"}]


def check_domain_availability(domain: str) -> dict:
    """Check whether a domain name can be registered.

    Args:
        domain: full domain name, e.g. example.com
    """
    return {"domain": domain, "available": False}


def get_population(country: str) -> dict:
    """Population of a country.

    Args:
        country: country name
    """
    return {"country": country, "population": 5457000}


def get_recipe(dish: str, servings: int = 2) -> dict:
    """Find a recipe for a dish.

    Args:
        dish: name of the dish
        servings: number of portions
    """
    return {"dish": dish, "cook_time_minutes": 35}


def get_parking_availability(garage: str) -> dict:
    """Free spaces in a parking garage.

    :param garage: garage name
    """
    return {"garage": garage, "free_spaces": 57}


def get_tide_times(harbor: str) -> dict:
    """Today's high and low tide times for a harbor."""
    return {"harbor": harbor, "high_tide": "06:42", "low_tide": "12:58"}


def get_invoice(invoice_id: str) -> dict:
    """Fetch an invoice.

    Args:
        invoice_id: invoice number such as INV-2093
    """
    return {"invoice_id": invoice_id, "amount_due": 1250.0, "due_date": "2026-12-15"}


def get_server_status(hostname: str) -> dict:
    """Health of a server.

    Args:
        hostname: the host name, e.g. web-01
    """
    return {"hostname": hostname, "status": "degraded", "cpu_percent": 91}


def get_git_commit(repository: str, sha: str) -> dict:
    """Information about a commit.

    Args:
        repository: owner/name
        sha: the commit hash (short or full)
    """
    return {"sha": sha, "author": "dana", "message": "Fix cache invalidation"}


def get_library_book(isbn: str) -> dict:
    """Availability of a book in the city library.

    Args:
        isbn: the book's ISBN
    """
    return {"isbn": isbn, "title": "Dune", "copies_available": 2}


def get_patient_appointment(patient_id: str) -> dict:
    """Next appointment of a clinic patient.

    :param patient_id: the patient's record number
    """
    return {"patient_id": patient_id, "appointment": "2026-12-09 10:30", "doctor": "Dr. Okafor"}


def set_thermostat(room: str, temperature: float) -> dict:
    """Set a room's target temperature in degrees Celsius.

    Args:
        room: room name, e.g. living room
        temperature: target temperature
    """
    return {"room": room, "target": temperature, "ok": True}


def get_fuel_prices(city: str, fuel: Literal["diesel", "gasoline", "electric"] = "gasoline") -> dict:
    """Average fuel price in a city.

    Args:
        city: city name
        fuel: kind of fuel
    """
    return {"city": city, "price_per_liter": 1.79}


def get_holiday_calendar(country_code: str, year: int) -> list:
    """Public holidays of a country in a year.

    Args:
        country_code: ISO country code, e.g. DE
        year: four-digit year
    """
    return [{"date": f"{year}-10-03", "name": "German Unity Day"}]


def lookup_word_definition(word: str) -> str:
    """Dictionary definition of an English word.

    Args:
        word: the word to define
    """
    return "serendipity: the occurrence of events by chance in a happy way"


def get_bus_arrivals(stop_id: str) -> list:
    """Next buses at a stop.

    Args:
        stop_id: the stop number
    """
    return [{"line": "42", "minutes": 6}]


def get_credit_score(customer_id: str) -> dict:
    """Credit score of a customer.

    Args:
        customer_id: customer id such as C-7781
    """
    return {"customer_id": customer_id, "score": 712}


def get_earthquake_reports(region: str, min_magnitude: float = 4.0) -> list:
    """Recent earthquakes in a region.

    Args:
        region: region or country name
        min_magnitude: smallest magnitude to include
    """
    return [{"magnitude": 5.2, "place": "off the coast"}]


def get_wifi_password(network: str) -> str:
    """Password of an office wifi network."""
    return "kettle-orbit-93"


def cancel_subscription(subscription_id: str, reason: Optional[str] = None) -> dict:
    """Cancel a customer's subscription.

    Args:
        subscription_id: id such as SUB-5510
        reason: why the customer cancels
    """
    return {"subscription_id": subscription_id, "cancelled": True, "refund": 9.99}


def get_vaccination_record(person_name: str) -> dict:
    """Vaccination record of a person."""
    return {"name": person_name, "last_dose": "2025-10-02"}


def get_sunrise_sunset(city: str, date: str) -> dict:
    """Sunrise and sunset times for a city on a date.

    Args:
        city: city name
        date: YYYY-MM-DD
    """
    return {"sunrise": "07:48", "sunset": "16:03"}


def get_nutrition_facts(food: str) -> dict:
    """Calories and macros per 100 g of a food.

    Args:
        food: food name, e.g. banana
    """
    return {"food": food, "calories": 89}


def get_package_version(package: str) -> dict:
    """Latest released version of a Python package on PyPI.

    Args:
        package: the distribution name
    """
    return {"package": package, "version": "2.3.1"}


def get_country_info(country: str) -> dict:
    """Capital, currency and calling code of a country.

    Args:
        country: country name
    """
    return {"country": country, "currency": "NOK", "calling_code": "+47"}


def get_loan_payment(principal: float, annual_rate: float, years: int) -> dict:
    """Monthly payment of a fixed-rate loan.

    Args:
        principal: loan amount
        annual_rate: interest rate in percent per year
        years: term of the loan
    """
    return {"monthly_payment": 1342.05}


def get_rental_cars(city: str, pickup_date: str) -> list:
    """Available rental cars.

    :param city: pickup city
    :param pickup_date: YYYY-MM-DD
    """
    return [{"model": "Toyota Corolla", "price_per_day": 48}]


def get_pharmacy_hours(pharmacy: str) -> dict:
    """Opening hours of a pharmacy."""
    return {"pharmacy": pharmacy, "opens": "08:00", "closes": "20:00"}


def get_github_stars(repository: str) -> int:
    """Number of stars of a GitHub repository.

    Args:
        repository: owner/name
    """
    return 15234


def get_electricity_usage(meter_id: str, month: str) -> dict:
    """Electricity used by a meter in a month.

    Args:
        meter_id: the meter id
        month: YYYY-MM
    """
    return {"meter_id": meter_id, "kwh": 318}


def get_gym_class_schedule(gym: str, day: Literal["monday", "tuesday", "wednesday", "thursday",
                                                   "friday", "saturday", "sunday"]) -> list:
    """Classes at a gym on a weekday.

    Args:
        gym: gym branch name
        day: day of the week
    """
    return [{"class": "spin", "time": "07:00"}]


def get_ski_conditions(resort: str) -> dict:
    """Snow conditions at a ski resort.

    Args:
        resort: resort name
    """
    return {"resort": resort, "snow_depth_cm": 145, "lifts_open": 12}


def get_pet_adoption_listings(species: Literal["dog", "cat", "rabbit"], city: str) -> list:
    """Pets available for adoption.

    Args:
        species: kind of animal
        city: city name
    """
    return [{"name": "Biscuit", "age_years": 3}]


def get_conference_room(room_name: str) -> dict:
    """Whether a conference room is free right now.

    :param room_name: the room's name
    """
    return {"room": room_name, "free": True, "free_until": "15:00"}


def get_tax_rate(state: str) -> dict:
    """Sales tax rate of a US state.

    Args:
        state: two-letter state code
    """
    return {"state": state, "rate_percent": 7.25}


def get_podcast_episodes(podcast: str, count: int = 3) -> list:
    """Latest episodes of a podcast.

    Args:
        podcast: podcast title
        count: number of episodes
    """
    return [{"title": "Episode 212: Deep Sea Life"}]


def get_warranty_status(serial_number: str) -> dict:
    """Warranty status of a device.

    Args:
        serial_number: the device's serial number
    """
    return {"serial_number": serial_number, "covered_until": "2027-03-31"}


def get_mortgage_rates(term_years: int) -> dict:
    """Today's average mortgage rate for a loan term.

    Args:
        term_years: 15 or 30
    """
    return {"term_years": term_years, "rate_percent": 6.12}


def get_school_grades(student_id: str, term: str) -> dict:
    """A student's grades for a term.

    Args:
        student_id: student number
        term: term such as fall-2026
    """
    return {"student_id": student_id, "gpa": 3.7}


def lookup_ip_address(ip: str) -> dict:
    """Geolocation of an IP address.

    Args:
        ip: IPv4 address
    """
    return {"ip": ip, "country": "Netherlands", "city": "Amsterdam"}


def get_bike_share_stations(neighborhood: str) -> list:
    """Bike-share stations with free bikes.

    Args:
        neighborhood: neighborhood name
    """
    return [{"station": "Canal St", "bikes": 7}]


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Current weather for a city.

    Args:
        city: the city name, e.g. Paris
        unit: temperature unit
    """
    return {"city": city, "temperature": 21, "unit": unit}
