"""Event awareness: similarity is not sameness.

"The Bank of England cuts rates" and "The Bank of England raises rates" share almost every
word and sit close in embedding space, yet they are different events. String and embedding
scores cannot see that, so every built-in similarity matcher passes its candidate pairs through
consistency checks on a small *signature* of each event (numbers, entities, polarity and
negation, intent, event kind; the action check below then rescores what passes):

* **numbers** - figures of the same kind (basis points, percentages, money, years, plain
  counts) must agree: "50 basis points" = "0.5 percentage points", but not "75 basis points";
* **entities** - when both sides name an actor the other side lacks ("Finland" / "Sweden"),
  they are different actors; aliases fold first ("the Fed" = "Federal Reserve", "UK" =
  "Britain", "French" = "France");
* **polarity** - opposite directions on one axis ("cuts" / "raises", "joins" / "leaves",
  "approves" / "rejects") conflict, as do moves on unrelated axes only ("withdraws from the
  race" / "wins the race"), and a negation on one side only ("does not raise");
* **intent** - an intention is not the act ("applies to join NATO" / "joins NATO");
* **event kind** - two texts that each name a kind of event but share none ("wins a
  confidence vote" / "resigns", "files for bankruptcy" / "is sold") are different events;
* **action** - for a pair with no shared actor, what is left once actors and figures are
  removed must still be similar; synonyms fold first ("steps down" = "resigns").

A pair that fails a check keeps a small share of its similarity (so rankings stay meaningful)
and falls below any sensible threshold. The checks are lexical, fast, and documented in
``docs/matchers.md``; an LLM judge can still overrule them in the cascade.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cached_property, lru_cache

import numpy as np

CONFLICT_PENALTY = 0.25

# ---------------------------------------------------------------------------- lexicons

_ALIASES = {
    "the fed": "federal_reserve", "fed": "federal_reserve", "federal reserve": "federal_reserve",
    "us federal reserve": "federal_reserve", "fomc": "federal_reserve",
    "ecb": "european_central_bank", "european central bank": "european_central_bank",
    "boe": "bank_of_england", "bank of england": "bank_of_england",
    "boj": "bank_of_japan", "bank of japan": "bank_of_japan",
    "imf": "imf", "international monetary fund": "imf",
    "eu": "european_union", "european union": "european_union", "brussels": "european_union",
    "un": "united_nations", "united nations": "united_nations",
    "who": "who", "world health organization": "who", "world health organisation": "who",
    "nato": "nato", "opec": "opec", "wto": "wto", "world trade organization": "wto",
    "us": "united_states", "u.s.": "united_states", "u.s": "united_states", "usa": "united_states",
    "united states": "united_states", "america": "united_states", "american": "united_states",
    "washington": "united_states",
    "uk": "united_kingdom", "u.k.": "united_kingdom", "britain": "united_kingdom",
    "great britain": "united_kingdom", "united kingdom": "united_kingdom", "british": "united_kingdom",
    "prime minister": "prime_minister", "pm": "prime_minister",
    "gop": "republican", "republicans": "republican", "democrats": "democrat",
    "democratic": "democrat", "tories": "conservative", "tory": "conservative",
    "conservatives": "conservative", "labour party": "labour",
    "s&p 500": "s_and_p_500", "s&p": "s_and_p_500", "dow jones": "dow_jones", "dow": "dow_jones",
    "ftse 100": "ftse", "ftse": "ftse", "nasdaq": "nasdaq",
}
_DEMONYMS = {
    "french": "france", "german": "germany", "russian": "russia", "chinese": "china",
    "japanese": "japan", "italian": "italy", "spanish": "spain", "greek": "greece",
    "ukrainian": "ukraine", "israeli": "israel", "iranian": "iran", "iraqi": "iraq",
    "turkish": "turkey", "swedish": "sweden", "finnish": "finland", "scottish": "scotland",
    "irish": "ireland", "canadian": "canada", "mexican": "mexico", "brazilian": "brazil",
    "indian": "india", "australian": "australia", "korean": "korea", "swiss": "switzerland",
    "dutch": "netherlands", "polish": "poland", "argentine": "argentina",
    "argentinian": "argentina", "venezuelan": "venezuela", "saudi": "saudi_arabia",
    "egyptian": "egypt", "syrian": "syria", "afghan": "afghanistan", "thai": "thailand",
    "indonesian": "indonesia", "philippine": "philippines", "filipino": "philippines",
    "vietnamese": "vietnam", "portuguese": "portugal", "belgian": "belgium", "austrian": "austria",
    "norwegian": "norway", "danish": "denmark", "icelandic": "iceland", "cypriot": "cyprus",
    "hungarian": "hungary", "czech": "czechia", "colombian": "colombia", "chilean": "chile",
    "peruvian": "peru", "nigerian": "nigeria", "kenyan": "kenya", "palestinian": "palestine",
    "lebanese": "lebanon", "libyan": "libya", "tunisian": "tunisia", "pakistani": "pakistan",
    "kuwaiti": "kuwait", "haitian": "haiti", "chilean ": "chile", "soviet": "soviet_union",
    "ussr": "soviet_union", "catalan": "catalonia", "welsh": "wales", "european": "europe",
    "asian": "asia", "african": "africa", "qatari": "qatar", "emirati": "uae",
}

# word form -> the (axis, direction) pairs it expresses ("lose" is both a fall and a defeat)
_POLARITY: dict[str, set[tuple[str, int]]] = {}


def _axis(axis: str, up: str, down: str) -> None:
    for word in up.split():
        _POLARITY.setdefault(word, set()).add((axis, 1))
    for word in down.split():
        _POLARITY.setdefault(word, set()).add((axis, -1))


# "lift" also lifts restrictions; both readings are kept, so "lifts rates" = "raises rates"
_axis("level", "raise raises raised raising hike hikes hiked hiking increase increases increased "
      "increasing boost boosts boosted tighten tightens tightened higher lift lifts lifted",
      "cut cuts cutting lower lowers lowered lowering reduce reduces reduced reducing decrease "
      "decreases decreased slash slashes slashed ease eases eased easing trim trims trimmed")
_axis("move", "rise rises rose risen rising climb climbs climbed surge surges surged soar soars "
      "soared jump jumps jumped gain gains gained rally rallies rallied rebound rebounds "
      "rebounded up strengthen strengthens strengthened appreciate appreciates high highs",
      "fall falls fell fallen falling drop drops dropped decline declines declined plunge "
      "plunges plunged slump slumps slumped tumble tumbles tumbled crash crashes crashed sink "
      "sinks sank slide slides slid down weaken weakens weakened depreciate depreciates "
      "devalue devalues devalued lose loses low lows")
_axis("member", "join joins joined joining rejoin rejoins rejoined enter enters entered accede "
      "accedes acceded admitted admits remain remains remained stay stays stayed",
      "leave leaves left leaving exit exits exited withdraw withdraws withdrew withdrawn "
      "withdrawal expelled expels suspends suspended")
_axis("contest", "win wins won winning victory victorious beat beats defeats survive survives "
      "survived", "lose loses lost losing defeated loss")
_axis("approval", "approve approves approved approving pass passes passed ratify ratifies "
      "ratified accept accepts accepted endorse endorses endorsed back backs backed upholds "
      "upheld yes agree agrees "
      "agreed confirm confirms confirmed lawful legal grant grants granted support supports "
      "supported decriminalise decriminalises decriminalize decriminalizes",
      "reject rejects rejected rejecting veto vetoes vetoed block blocks blocked refuse "
      "refuses refused decline declines declined overturn overturns overturned strike "
      "strikes struck oppose opposes opposed no unlawful illegal stripped strips "
      "deny denies denied outlaw outlaws outlawed criminalise criminalises criminalize "
      "criminalizes")
_axis("permit", "legalise legalises legalised legalize legalizes legalized allow allows allowed",
      "ban bans banned")
_axis("retain", "keep keeps kept retain retains retained maintain maintains maintained preserve "
      "preserves preserved", "repeal repeals repealed abolish abolishes abolished")
_axis("relations", "restore restores restored establish establishes established normalise "
      "normalises normalize normalizes", "sever severs severed")
# a product "released" is launched; a market that "closes" ends its day; "scrapping" abolishes
_axis("activity", "release releases released", "close closes closed")
_axis("retain", "", "scrap scraps scrapped")
_axis("open", "open opens opened reopen reopens reopened", "close closes closed shut shuts "
      "shutdown")
_axis("activity", "start starts started begin begins began launch launches launched resume "
      "resumes resumed extend extends extended restart restarts restarted proceeds",
      "end ends ended halt halts halted stop stops stopped suspend suspends suspended cease "
      "ceases ceased terminate terminates terminated pause pauses paused postpone postpones "
      "postponed cancel cancels cancelled canceled scrub scrubs scrubbed abort aborts aborted "
      "delay delays delayed")
_axis("restriction", "impose imposes imposed introduce introduces introduced", "lift lifts lifted "
      "scrap scraps scrapped remove removes removed relax relaxes relaxed")
_axis("economy", "expand expands expanded expansion grow grows grew growth", "contract contracts "
      "contracted contraction shrink shrinks shrank recession")
_axis("verdict", "convict convicts convicted guilty", "acquit acquits acquitted innocent")
_axis("surplus", "surplus", "deficit")
_axis("earnings", "profit profits", "losses")
_axis("rating", "upgrade upgrades upgraded", "downgrade downgrades downgraded")
_axis("custody", "release releases released free frees freed", "detain detains detained arrest "
      "arrests arrested jail jails jailed imprison imprisons imprisoned")
_axis("buy", "buy buys bought acquire acquires acquired purchase purchases purchased",
      "sell sells sold divest divests divested")
# "fire" alone is far more often a blaze than a dismissal, so only "fires"/"fired" count
_axis("hire", "hire hires hired", "fires fired lay_off layoffs")

# word (after synonym folding) -> the kinds of event it names; two texts that each name event
# kinds but share none ("resigns" / "dies", "files for bankruptcy" / "sold to") describe
# different events of the same actor, which wording similarity cannot see
_EVENT_KINDS: dict[str, set[str]] = {}


def _kind(kind: str, words: str) -> None:
    for word in words.split():
        _EVENT_KINDS.setdefault(word, set()).add(kind)


# a successor "replacing" someone implies that person's departure, so it sits in both
_kind("depart", "resigns resigning retire retires retired replacing replaces succeeds")
_kind("appoint", "appoint appoints appointed names named promote promotes promoted returns "
      "returned reinstated replacing replaces succeeds")
_kind("dismiss", "fires fired oust ousts ousted sacks sacked dismisses dismissed")
_kind("death", "dies died dead death killed assassinated")
_kind("election", "elected re-elected reelected election elections referendum re-election "
      "reelection elects")
_kind("arrest", "arrest arrested arrests arresting detain detains detained capture captures "
      "captured custody")
_kind("impeach", "impeach impeaches impeached impeachment")
_kind("bankruptcy", "bankruptcy insolvency insolvent")
_kind("acquisition", "acquisition buy bought acquire acquired purchase purchased sold sell "
      "sells selling")
_kind("rescue", "rescue loan loans borrows borrowed funding")
_kind("nationalise", "nationalises nationalised nationalizes nationalized nationalisation "
      "nationalization")
_kind("health", "surgery hospital hospitalised hospitalized")
_kind("flight", "flees fled exile")
_kind("blaze", "fire blaze engulfs")
_kind("reopen", "reopens reopened reopen")
_kind("nomination", "nomination nominee")
_kind("attack", "attack attacks attacked invasion bombing bombed shooting")
_kind("charge", "indicted indicts indictment charged")
_kind("conviction", "convicted sentenced jailed")
_kind("protest", "protest protests protesters demonstrations riots")
_kind("disaster", "earthquake quake tsunami hurricane typhoon cyclone flood floods flooding "
      "wildfire eruption")
_kind("default", "default defaults defaulted")
_kind("marriage", "marries married wedding")
_kind("asset_purchases", "bond-buying quantitative qe")
_kind("landing", "lands landed landing touchdown")
_kind("ipo", "ipo")
_kind("censure", "censure censures censured")
_kind("collapse", "collapse collapses collapsed seized seizes failure")
_kind("launch", "launch launches launched liftoff")
_kind("accident", "disintegrates disintegrated explodes exploded explosion crashes crashed "
      "destroyed")
_kind("test", "test tests tested")
_kind("membership", "join joins joined member membership accession accedes")
_kind("victory", "win wins won victory beats beat defeats survives survived title elected "
      "re-elected reelected")
_kind("strip", "stripped strips revoked revokes")
_kind("relations", "relations ties diplomatic")
_kind("abolish", "abolishes abolished abolish repeal repeals repealed")
_kind("split", "split splits spin-off spinoff")
_kind("sanctions", "sanctions sanctioned embargo")
_kind("visit", "visit visits visited")
_kind("meeting", "summit meets meeting")
_kind("discovery", "discovers discovered discovery")
_kind("pardon", "pardon pardons pardoned")
_kind("coup", "coup")
_kind("truce", "truce")
_kind("abdication", "abdicates abdicated abdication")
_kind("death", "assassination murdered")
_kind("election", "runoff")
# a vote of any kind (confidence, referendum, ballot) is one kind of event, a resignation another
_kind("vote", "vote votes voted ballot referendum confidence")

_NEGATIONS = {"not", "no", "never", "n't", "without", "avoids", "avoid", "avoided", "averts",
              "avert", "averted", "fails", "fail", "failed", "unable", "neither", "nor"}

# phrase -> canonical action word, so synonyms compare equal in the action check
_SYNONYMS = {
    "steps down": "resigns", "step down": "resigns", "stepped down": "resigns", "quits": "resigns",
    "stands down": "resigns", "resignation": "resigns", "resigned": "resigns", "resign": "resigns",
    "files for bankruptcy": "bankruptcy", "bankrupt": "bankruptcy", "chapter 11": "bankruptcy",
    "goes bust": "bankruptcy", "collapses": "collapse", "collapsed": "collapse",
    "elected": "wins election", "sworn in": "takes office", "inaugurated": "takes office",
    "takes power": "takes office", "assumes office": "takes office", "hikes": "raises",
    "takeover": "acquisition", "acquires": "acquisition", "buys": "acquisition",
    "merger": "acquisition", "merges": "acquisition", "deal": "acquisition",
    "take over": "acquisition", "takes over": "acquisition", "taken over": "acquisition",
    "votes down": "rejects", "voted down": "rejects", "vote down": "rejects",
    "strikes down": "overturns", "struck down": "overturns",
    "public ownership": "nationalises", "state ownership": "nationalises",
    "passes away": "dies", "passed away": "dies", "goes public": "ipo", "went public": "ipo",
    "seizes power": "coup", "breaks up": "disintegrates", "broke up": "disintegrates", "go ahead": "proceeds", "goes ahead": "proceeds",
    "invades": "invasion", "invaded": "invasion", "attacks": "attack", "attacked": "attack",
    "ceasefire": "truce", "armistice": "truce", "bailout": "rescue", "bails out": "rescue",
    "rescue package": "rescue", "interest rates": "rates", "interest rate": "rates",
    "policy rate": "rates", "benchmark rate": "rates", "key rate": "rates",
    "basis points": "", "percentage points": "", "percentage point": "", "basis point": "",
}

_SYNONYM_ORDER = sorted(_SYNONYMS, key=len, reverse=True)
_ALIAS_FIRST_WORDS = {phrase.split()[0] for phrase in _ALIASES}
_PHRASES = [phrase for phrase in _SYNONYM_ORDER if " " in phrase]

_COUNTRIES = set(["afghanistan", "albania", "algeria", "argentina", "armenia", "australia", "austria", "azerbaijan", "bahrain", "bangladesh", "belarus", "belgium", "bolivia", "bosnia", "brazil", "bulgaria", "cambodia", "cameroon", "canada", "chile", "china", "colombia", "croatia", "cuba", "cyprus", "czechia", "denmark", "ecuador", "egypt", "estonia", "ethiopia", "finland", "france", "georgia", "germany", "ghana", "greece", "haiti", "hungary", "iceland", "india", "indonesia", "iran", "iraq", "ireland", "israel", "italy", "japan", "jordan", "kazakhstan", "kenya", "kosovo", "kuwait", "latvia", "lebanon", "libya", "lithuania", "luxembourg", "malaysia", "mali", "malta", "mexico", "moldova", "mongolia", "montenegro", "morocco", "myanmar", "nepal", "netherlands", "nicaragua", "niger", "nigeria", "norway", "oman", "pakistan", "panama", "paraguay", "peru", "philippines", "poland", "portugal", "qatar", "romania", "russia", "rwanda", "scotland", "senegal", "serbia", "singapore", "slovakia", "slovenia", "somalia", "spain", "sudan", "sweden", "switzerland", "syria", "taiwan", "tanzania", "thailand", "tunisia", "turkey", "uganda", "ukraine", "uruguay", "uzbekistan", "venezuela", "vietnam", "wales", "yemen", "zambia", "zimbabwe"])
# capitalised words that are titles or institutions, not actors that can be swapped
_COMMON_CAPITALISED = set(["president", "prime", "minister", "chancellor", "king", "queen", "pope", "cardinal", "parliament", "congress", "senate", "house", "court", "supreme", "government", "party", "league", "cup", "games", "olympics", "olympic", "world", "national", "central", "bank", "international", "federal", "republic", "union", "chief", "executive", "ceo", "airlines", "airways", "rate", "rates"])
# words that open a headline without naming anyone
_COMMON_STARTERS = set(["former", "powerful", "last", "hosts", "rank", "crypto", "energy", "space", "magnitude", "voters", "protesters", "troops", "police", "divers", "mps", "lawmakers", "regulators", "shareholders", "investors", "markets", "stocks", "oil", "gold", "eurozone", "nearly", "over", "more", "thousands", "hundreds", "millions", "all", "rescuers"])
_VOTE_WORDS = {"vote", "votes", "voted", "say", "says", "said", "narrowly"}
# "plan"/"plans" count only before "to": "bailout plan" is a thing, "plans to" an intention
_INTENT_BEFORE_TO = {"plan", "plans"}
_INTENT = {"applies", "apply", "considers", "threatens", "proposes", "proposed",
           "bid", "bids", "hopes", "expected", "mulls", "weighs", "talks", "negotiations",
           "candidate", "nominated", "nominates"}
_INTENT_WORDS = frozenset(_INTENT | _INTENT_BEFORE_TO)

_STOPWORDS = set(["a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "as", "and", "or", "its", "it", "their", "his", "her", "is", "are", "was", "be", "been", "being", "has", "have", "had", "will", "would", "shall", "that", "this", "these", "those", "into", "over", "under", "after", "before", "amid", "during", "than", "then", "per", "about", "against", "between", "through", "up", "out", "first", "new"])

_WORD = re.compile(r"[A-Za-z][A-Za-z'&.-]*[A-Za-z]|[A-Za-z]|\$?\d[\d,]*(?:\.\d+)?%?")
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20,
                 "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100, "dozen": 12}
_SCALES = {"thousand": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9,
           "b": 1e9, "trillion": 1e12, "tn": 1e12}


@dataclass(frozen=True)
class EventSignature:
    """What the consistency checks compare; built once per distinct string."""

    text: str
    tokens: tuple[str, ...]
    entity_flags: tuple[bool, ...]
    numbers: frozenset[tuple[str, float]]
    polarity: frozenset[tuple[str, int]]
    negated: bool
    intent: bool
    raw_tokens: tuple[str, ...]
    folded: tuple[str, ...]
    events: frozenset[str] = frozenset()

    # cached, and built on first use: most candidate pairs fail a cheap check before any
    # check reads the acronyms or the action
    @cached_property
    def acronyms(self) -> frozenset[str]:
        return frozenset(_acronyms(list(self.raw_tokens)))

    @cached_property
    def action(self) -> str:
        return _action(self.folded, self.entities)

    @cached_property
    def words(self) -> frozenset[str]:
        return frozenset(self.tokens)

    @cached_property
    def axes(self) -> dict[str, frozenset[int]]:
        return {axis: frozenset(d for ax, d in self.polarity if ax == axis)
                for axis, _ in self.polarity}

    @cached_property
    def figures(self) -> dict[str, frozenset[float]]:
        return {kind: frozenset(v for k, v in self.numbers if k == kind)
                for kind, _ in self.numbers}

    @cached_property
    def entities(self) -> frozenset[str]:
        return frozenset(t for t, flag in zip(self.tokens, self.entity_flags, strict=True) if flag)


@lru_cache(maxsize=65536)
def signature(text: str) -> EventSignature:
    """The event signature of ``text``.

    >>> sig = signature("The Fed raises rates by 50 basis points")
    >>> sorted(sig.entities), sorted(sig.numbers), sorted(sig.polarity)
    (['federal_reserve'], [('bp', 50.0)], [('level', 1)])
    """
    raw = [t.rstrip(".") if not t.endswith("u.s.") else t for t in
           _WORD.findall(_ascii(text))]
    raw = [t[:-2] if t.endswith("'s") else t for t in raw if t]
    tokens: list[str] = []
    flags: list[bool] = []
    i = 0
    lowered = [t.lower() for t in raw]
    while i < len(raw):
        # the longest alias phrase starting here becomes one entity token
        for length in (4, 3, 2, 1) if lowered[i] in _ALIAS_FIRST_WORDS else ():
            phrase = " ".join(lowered[i:i + length])
            if len(raw[i:i + length]) == length and phrase in _ALIASES and (
                phrase not in ("who", "us", "un", "fed") or raw[i][:1].isupper()
            ):
                tokens.append(_ALIASES[phrase])
                flags.append(True)
                i += length
                break
        else:
            tok = raw[i]
            low = tok.lower()
            if low in _DEMONYMS or low in _COUNTRIES:
                tokens.append(_DEMONYMS.get(low, low))
                flags.append(True)
            else:
                tokens.append(low)
                flags.append(tok[:1].isupper() and _is_proper(raw, i))
            i += 1
    # set tests first: most texts have no negation or intent word to look at closely
    words = set(tokens)
    numbers = _numbers(tokens)
    polarity = _polarity(_fold(" ".join(tokens), phrases_only=True).split())
    # "votes No" / "says no" is a rejection (approval axis), not a negation
    negated = (not words.isdisjoint(_NEGATIONS) or "'" in text or "\u2019" in text) and any(
        (t in _NEGATIONS and not (t == "no" and i and tokens[i - 1] in _VOTE_WORDS))
        or t.endswith("n't") for i, t in enumerate(tokens))
    intent = not words.isdisjoint(_INTENT_WORDS) and any(
        t in _INTENT or (t in _INTENT_BEFORE_TO and tokens[k + 1:k + 2] == ["to"])
        for k, t in enumerate(tokens))
    folded = _fold(" ".join(tokens)).split()
    events = {kind for t in {*tokens, *folded} for kind in _EVENT_KINDS.get(t, ())}
    return EventSignature(text, tuple(tokens), tuple(flags), frozenset(numbers),
                          frozenset(polarity), negated, intent, tuple(raw), tuple(folded),
                          frozenset(events))


def _polarity(words: list[str]) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for k, word in enumerate(words):
        pairs = _POLARITY.get(word)
        if word in ("for", "to", "against") and k and words[k - 1] in _VOTE_WORDS:
            # "votes for" / "votes to" / "votes against"
            pairs = {("approval", -1 if word == "against" else 1)}
        if not pairs:
            continue
        # the passive swaps the roles: "X sold to Y" is "Y buys X", not a sale by Y
        nxt = words[k + 1] if k + 1 < len(words) else ""
        if (nxt == "to" and ("buy", -1) in pairs) or (nxt == "by" and ("buy", 1) in pairs):
            pairs = {pair for pair in pairs if pair[0] != "buy"}
        found |= pairs
    return found


def _ascii(text: str) -> str:
    # "Chávez" must stay one token equal to "Chavez", not split at the accent
    text = text.replace("\u2019", "'")
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


def _is_proper(raw: list[str], i: int) -> bool:
    tok = raw[i]
    low = tok.lower()
    if not tok[:1].isupper() or low in _STOPWORDS or low in _POLARITY or low in _NEGATIONS:
        return False
    if low in _COMMON_CAPITALISED or any(c.isdigit() for c in tok):
        return False
    return i > 0 or (len(tok) > 1 and tok.isupper()) or _next_is_capital(raw, i) or \
        low not in _COMMON_STARTERS


def _acronyms(raw: list[str]) -> set[str]:
    # initials of each run of capitalised words: "American International Group" -> "aig"
    found: set[str] = set()
    run: list[str] = []
    for tok in [*raw, ""]:
        if tok[:1].isupper() and tok.lower() not in ("of", "the", "and"):
            run.append(tok)
            continue
        if tok.lower() in ("of", "the", "and") and run:
            continue
        for start in range(len(run)):
            for end in range(start + 2, len(run) + 1):
                found.add("".join(w[0] for w in run[start:end]).lower())
        run = []
    return found


def _has_upper(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase.upper())}\b", text) is not None


def _next_is_capital(tokens: list[str], i: int) -> bool:
    return i + 1 < len(tokens) and tokens[i + 1][:1].isupper() and tokens[i + 1].lower() not in _STOPWORDS


_DECIMAL = re.compile(r"\d+(?:\.\d+)?")
_NUMBER_STARTS = frozenset("0123456789$£€")
_NUMBERISH = frozenset([*_NUMBER_WORDS, "half", "quarter", "half-point", "quarter-point"])


def _numbers(tokens: list[str]) -> set[tuple[str, float]]:
    found: set[tuple[str, float]] = set()
    for i, tok in enumerate(tokens):
        if not (tok[:1] in _NUMBER_STARTS or tok in _NUMBERISH):  # most tokens: no figure
            continue
        value: float | None = None
        money = tok.startswith(("$", "£", "€"))
        core = tok.lstrip("$£€").rstrip("%").replace(",", "")
        if _DECIMAL.fullmatch(core):
            value = float(core)
        elif tok in _NUMBER_WORDS:
            value = float(_NUMBER_WORDS[tok])
        elif tok in ("half", "quarter") and i + 2 < len(tokens) and "point" in tokens[i + 2]:
            found.add(("bp", 50.0 if tok == "half" else 25.0))
            continue
        elif tok in ("half-point", "quarter-point"):
            found.add(("bp", 50.0 if tok == "half-point" else 25.0))
            continue
        if value is None:
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        nxt2 = tokens[i + 2] if i + 2 < len(tokens) else ""
        if nxt in ("basis", "bp", "bps") or tok.endswith("bp"):
            found.add(("bp", value))
        elif nxt == "percentage" and nxt2.startswith("point"):
            found.add(("bp", round(value * 100, 6)))
        elif tok.endswith("%") or nxt in ("percent", "per"):
            found.add(("pct", value))
        elif nxt in _SCALES or money:
            found.add(("amount", value * _SCALES.get(nxt, 1.0)))
        elif 1900 <= value <= 2100 and value.is_integer():
            found.add(("year", value))
        else:
            found.add(("count", value))
    return found


def _fold_pattern(phrases: list[str]) -> re.Pattern[str]:
    # longest first, so "steps down" folds before "down" reads as a fall; one pass over the text
    return re.compile("(?<= )(?:" + "|".join(re.escape(p) for p in phrases) + ")(?= )")


_FOLD_ALL = _fold_pattern(_SYNONYM_ORDER)
_FOLD_PHRASES = _fold_pattern(_PHRASES)
_FOLD_FIRST_WORDS = frozenset(phrase.split()[0] for phrase in _SYNONYM_ORDER)


def _fold(text: str, *, phrases_only: bool = False) -> str:
    pattern = _FOLD_PHRASES if phrases_only else _FOLD_ALL
    if _FOLD_FIRST_WORDS.isdisjoint(text.split()):  # nothing to fold: skip the regex
        return text
    return pattern.sub(lambda m: _SYNONYMS[m.group(0)], f" {text} ").strip()


def _action(folded: Sequence[str], entities: frozenset[str]) -> str:
    words = [
        w for w in folded
        if w not in entities and w not in _NOT_ACTION and "_" not in w and not _DIGIT.search(w)
    ]
    return " ".join(words)


_NOT_ACTION = frozenset([*_STOPWORDS, *_SCALES, *_NUMBER_WORDS])
_DIGIT = re.compile(r"\d")


def conflicts(a: EventSignature, b: EventSignature) -> list[str]:
    """The checks ``a`` and ``b`` fail; empty when they may be the same event.

    >>> conflicts(signature("Finland joins NATO"), signature("Sweden joins NATO"))
    ['entity']
    >>> conflicts(signature("Bank of England cuts rates"), signature("BoE raises interest rates"))
    ['polarity']
    >>> conflicts(signature("Lehman Brothers files for bankruptcy"),
    ...           signature("Lehman Brothers Holdings files for Chapter 11 protection"))
    []
    """
    return [name for name, check in _CHECKS.items() if check(a, b)]


def has_conflict(a: EventSignature, b: EventSignature) -> bool:
    """Whether any check fails; stops at the first, cheapest checks first."""
    return any(check(a, b) for check in _CHECKS.values())


def _number_conflict(a: EventSignature, b: EventSignature) -> bool:
    for kind in a.figures.keys() & b.figures.keys():
        left, right = a.figures[kind], b.figures[kind]
        if not left & right or (left - right and right - left):
            return True
    return False


def _polarity_conflict(a: EventSignature, b: EventSignature) -> bool:
    axes_a, axes_b = a.axes, b.axes
    if not axes_a.keys() & axes_b.keys():
        # both move, but along unrelated axes ("withdraws from the race" / "wins the race"):
        # two different things happened
        return _different_moves(axes_a.keys(), axes_b.keys())
    return any(len(axes_a[axis]) == 1 and len(axes_b[axis]) == 1 and axes_a[axis] != axes_b[axis]
               for axis in axes_a.keys() & axes_b.keys())


# "agrees to", "backs", "up"/"down", "starts"/"ends" frame another action more often than
# they are one
_FRAMING_AXES = {"approval", "move", "activity"}


def _different_moves(left: Iterable[str], right: Iterable[str]) -> bool:
    return bool(set(left) - _FRAMING_AXES) and bool(set(right) - _FRAMING_AXES)


def _event_kind_conflict(a: EventSignature, b: EventSignature) -> bool:
    return bool(a.events) and bool(b.events) and not a.events & b.events


def _has_unique_actor(sig: EventSignature, other: EventSignature) -> bool:
    return any(t not in other.words and t not in other.acronyms for t in sig.entities)


def _unique_entities(segment: range, sig: EventSignature, other: EventSignature) -> set[str]:
    return {
        sig.tokens[k] for k in segment
        if sig.entity_flags[k] and sig.tokens[k] not in other.words
        and sig.tokens[k] not in other.acronyms
        and not any(sig.tokens[k] in t.split("-") for t in other.tokens)
    }


def _swapped_entity(a: EventSignature, b: EventSignature) -> bool:
    """An actor in one text stands where a different actor stands in the other."""
    # cheap exit first: without an actor unique to each side there is nothing to swap
    if not _has_unique_actor(a, b) or not _has_unique_actor(b, a):
        return False
    ops = SequenceMatcher(None, a.tokens, b.tokens, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag != "replace" or i2 - i1 > _MAX_SWAP or j2 - j1 > _MAX_SWAP:
            continue
        if _qualifies_lead_actor(a, b, (i1, i2, j1, j2)):
            continue
        if _unique_entities(range(i1, i2), a, b) and _unique_entities(range(j1, j2), b, a):
            return True
    return False


_MAX_SWAP = 3


def _qualifies_lead_actor(a: EventSignature, b: EventSignature,
                          span: tuple[int, int, int, int]) -> bool:
    # words opening both texts right before a shared actor qualify it ("Cardinal Jorge Mario" /
    # "Argentine" Bergoglio, "Boris" / "UK prime minister" Johnson): one actor, named twice.
    # Only at the start: mid-text, the next actor may begin a new clause ("Schwab, FDIC ...")
    i1, i2, j1, j2 = span
    return i1 == j1 == 0 and i2 < len(a.tokens) and j2 < len(b.tokens) \
        and a.entity_flags[i2] and a.tokens[i2] == b.tokens[j2]

# name -> check, cheapest first; the entity check aligns token sequences and comes last
def _roles_swapped(a: EventSignature, b: EventSignature) -> bool:
    """The same contest with winner and loser exchanged ("France beats Portugal" /
    "Portugal beats France"): same actors, same direction, a different first actor."""
    if ("contest", 1) not in a.polarity or a.polarity != b.polarity:
        return False
    first_a = next((t for t, f in zip(a.tokens, a.entity_flags, strict=True) if f), None)
    first_b = next((t for t, f in zip(b.tokens, b.entity_flags, strict=True) if f), None)
    return (first_a is not None and first_b is not None and first_a != first_b
            and first_a in b.entities and first_b in a.entities)


_CHECKS: dict[str, Callable[[EventSignature, EventSignature], bool]] = {
    "number": _number_conflict, "polarity": _polarity_conflict,
    "negation": lambda x, y: x.negated != y.negated,
    "intent": lambda x, y: x.intent != y.intent, "action": _event_kind_conflict,
    "entity": _swapped_entity, "roles": lambda x, y: _roles_swapped(x, y),
}


def event_aware_scores(
    raw: np.ndarray,
    predicted: Sequence[str],
    actual: Sequence[str],
    action_scores: Callable[[list[str], list[str]], np.ndarray],
    *,
    floor: float,
) -> np.ndarray:
    """Apply the consistency checks to the pairs of ``raw`` scoring at least ``floor``.

    A pair with a conflict keeps ``CONFLICT_PENALTY`` of its score. A pair that names the same
    actor on both sides keeps its whole-text similarity: the checks above already vetoed a
    different action of that actor, and paraphrases reword everything else. Otherwise, when
    both sides have an action left, the score becomes the geometric mean of the whole-text
    similarity and the action similarity (``action_scores`` gives pairwise scores of aligned
    lists).
    """
    out = np.array(raw, dtype=float, copy=True)
    rows, cols = np.nonzero(out >= floor)
    if rows.size == 0:
        return out
    # signatures only for the strings in a candidate pair: most strings of a large
    # matrix are in none, and building a signature is the costly part
    left_sigs = {i: signature(predicted[i]) for i in set(rows.tolist())}
    right_sigs = {j: signature(actual[j]) for j in set(cols.tolist())}
    pending: list[tuple[int, int]] = []
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b = left_sigs[i], right_sigs[j]
        if a.text == b.text:  # the same words are the same event; skip the costly checks
            continue
        if has_conflict(a, b):
            out[i, j] *= CONFLICT_PENALTY
        elif a.action and b.action and not shares_actor(a, b):
            pending.append((i, j))
    if pending:
        sims = action_scores([left_sigs[i].action for i, _ in pending],
                             [right_sigs[j].action for _, j in pending])
        for (i, j), sim in zip(pending, np.clip(sims, 0.0, 1.0).tolist(), strict=True):
            out[i, j] = float(np.sqrt(out[i, j] * sim))
    return out


def shares_actor(a: EventSignature, b: EventSignature) -> bool:
    """Some actor of one text appears in the other, also as an acronym ("AIG").

    >>> shares_actor(signature("Fed rescues AIG"),
    ...              signature("Bailout of American International Group"))
    True
    """
    return any(t in b.words or t in b.acronyms for t in a.entities) or \
        any(t in a.acronyms for t in b.entities)
