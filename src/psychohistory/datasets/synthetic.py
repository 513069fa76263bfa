"""A seedable generator of synthetic cases: fictional actors, realistic event chains.

Synthetic cases are for tests, smoke runs and teaching: the actors are invented, so no model
can have memorised the outcomes, and every chain follows a plausible causal template.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from psychohistory.cases import Case, Outcome

COUNTRIES = ["Norland", "Vestria", "Kalmora", "Ostrava", "Belmark", "Sorrento Bay", "Quessar",
             "Tirania", "Lundholm", "Marovia", "Eskavar", "Delmont"]
COMPANIES = ["Arcturus Bank", "Helios Motors", "Northwind Pharma", "Corvid Systems",
             "Bluepeak Energy", "Tessaract Labs", "Granite Mutual", "Orion Foods",
             "Meridian Airlines", "Quill Media"]
LEADERS = ["Anna Lindqvist", "Marco Ferri", "Ida Kowal", "Tomas Reyes", "Lena Brandt",
           "Oskar Haugen", "Clara Moreau", "Yusuf Demir", "Petra Novak", "Jonas Ek"]
PARTIES = ["Unity Party", "Green Alliance", "People's Front", "Liberal Union", "Labour Bloc"]


def _central_bank(rng: random.Random, day: date) -> tuple[str, str, list[tuple[str, int | None]]]:
    country = rng.choice(COUNTRIES)
    inflation = round(rng.uniform(5.5, 11.0), 1)
    bps = rng.choice([25, 50, 75])
    seed = f"The central bank of {country} raises its policy rate by {bps} basis points"
    context = f"Annual inflation in {country} stands at {inflation}%"
    outcomes = [
        (f"The {country} currency strengthens against the US dollar", None),
        (f"Mortgage rates in {country} rise to a ten-year high", None),
        (f"House prices in {country} fall for three consecutive months", 1),
        (f"Inflation in {country} falls below {int(inflation) - 2}%", None),
    ]
    return seed, context, outcomes


def _election(rng: random.Random, day: date) -> tuple[str, str, list[tuple[str, int | None]]]:
    country = rng.choice(COUNTRIES)
    winner, loser = rng.sample(LEADERS, 2)
    party = rng.choice(PARTIES)
    share = rng.randint(38, 55)
    seed = f"{winner} of the {party} wins the {country} general election"
    context = f"The {party} takes {share}% of the vote; turnout {rng.randint(55, 80)}%"
    outcomes = [
        (f"{loser} concedes defeat", None),
        (f"{winner} is sworn in as prime minister of {country}", None),
        (f"{winner} appoints a new finance minister", 1),
        (f"{loser} resigns as party leader", 0),
    ]
    if share < 45:
        outcomes.append((f"The {party} forms a coalition government", None))
    return seed, context, outcomes


def _merger(rng: random.Random, day: date) -> tuple[str, str, list[tuple[str, int | None]]]:
    buyer, target = rng.sample(COMPANIES, 2)
    price = rng.choice([4.2, 7.5, 12, 18.3, 26])
    seed = f"{buyer} agrees to acquire {target} for ${price} billion"
    context = f"The offer is a {rng.randint(18, 45)}% premium to {target}'s closing share price"
    outcomes = [
        (f"{target} shares jump on the announcement", None),
        (f"Competition regulators open an in-depth review of the {buyer} deal", None),
        ("Regulators approve the acquisition with conditions", 1),
        (f"{buyer} completes the acquisition of {target}", 2),
        (f"{buyer} announces job cuts after the merger", 3),
    ]
    return seed, context, outcomes


def _disaster(rng: random.Random, day: date) -> tuple[str, str, list[tuple[str, int | None]]]:
    country = rng.choice(COUNTRIES)
    magnitude = round(rng.uniform(6.5, 8.4), 1)
    seed = f"A magnitude {magnitude} earthquake strikes the coast of {country}"
    context = f"The epicentre is {rng.randint(20, 90)} km offshore at a shallow depth"
    outcomes = [
        (f"A tsunami warning is issued for the coast of {country}", None),
        (f"The government of {country} declares a state of emergency", None),
        (f"International aid arrives in {country}", 1),
        (f"A nuclear power plant in {country} shuts down as a precaution", None),
    ]
    return seed, context, outcomes


def _outbreak(rng: random.Random, day: date) -> tuple[str, str, list[tuple[str, int | None]]]:
    country = rng.choice(COUNTRIES)
    cases = rng.randint(40, 400)
    seed = f"Health officials in {country} report an outbreak of a new respiratory virus"
    context = f"{cases} confirmed cases in two weeks; human-to-human spread suspected"
    outcomes = [
        (f"Neighbouring countries introduce screening at borders with {country}", None),
        ("The World Health Organization declares a public health emergency", None),
        (f"Schools in {country} close for a month", None),
        ("A vaccine candidate enters clinical trials", 1),
    ]
    return seed, context, outcomes


TEMPLATES: dict[str, Callable[[random.Random, date], tuple[str, str, list[tuple[str, int | None]]]]] = {
    "central_bank": _central_bank,
    "election": _election,
    "merger": _merger,
    "disaster": _disaster,
    "pandemic": _outbreak,
}


def generate_synthetic_cases(n: int = 60, *, seed: int = 0) -> list[Case]:
    """``n`` synthetic cases; the same ``seed`` always gives the same cases.

    >>> cases = generate_synthetic_cases(3, seed=1)
    >>> len(cases), cases == generate_synthetic_cases(3, seed=1)
    (3, True)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    kinds = sorted(TEMPLATES)
    cases = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        day = date(2030, 1, 1) + timedelta(days=rng.randint(0, 3650))
        seed_text, context, chain = TEMPLATES[kind](rng, day)
        # keep a random subset of the chain, always with the parents of what is kept
        keep = {j for j in range(len(chain)) if rng.random() < 0.85} or {0}
        for j in sorted(keep, reverse=True):
            parent = chain[j][1]
            while parent is not None:
                keep.add(parent)
                parent = chain[parent][1]
        outcomes = []
        offset = 0
        for j in sorted(keep):
            event, parent = chain[j]
            offset += rng.randint(1, 40)
            outcomes.append(Outcome(
                id=f"o{j + 1}", event=event,
                date=(day + timedelta(days=offset)).isoformat(),
                parent=f"o{parent + 1}" if parent is not None else None,
            ))
        cases.append(Case(
            id=f"synthetic-{seed}-{i:04d}", seed=seed_text, context=context,
            date=day.isoformat(), domain=kind, source="synthetic (generated, fictional actors)",
            outcomes=outcomes,
        ))
    return cases
