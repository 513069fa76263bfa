import json
import pickle

import numpy as np
import pytest

import psychohistory as ph
from psychohistory.cases import Case, Outcome
from psychohistory.rewards import DEFAULT_WEIGHTS, CompositeReward
from psychohistory.rewards.calibration import CalibrationReward


def tree(*nodes, seed="S"):
    def node(item):
        event, p, *children = item
        return {"event": event, "probability": p, "children": [node(c) for c in children]}
    return json.dumps({"seed": seed, "children": [node(n) for n in nodes]})


def default_composition(matcher="exact"):
    rewards = [ph.get_reward(name, **({} if name == "format" else {"matcher": matcher}))
               for name in DEFAULT_WEIGHTS]
    return CompositeReward(rewards, list(DEFAULT_WEIGHTS.values()))


HAPPENED = Case(id="yes", seed="S", outcomes=[Outcome(id="a", event="Prices rise"),
                                                Outcome(id="b", event="Wages stall")])
DID_NOT = Case(id="no", seed="S", outcomes=[Outcome(id="a", event="Exports boom"),
                                              Outcome(id="b", event="Wages stall")])


def expected_reward(reward, p, q):
    completion = tree(("Prices rise", float(p)), ("Wages stall", 1.0))
    yes = reward([completion], case=[HAPPENED])[0]
    no = reward([completion], case=[DID_NOT])[0]
    return q * yes + (1 - q) * no


@pytest.mark.parametrize("make", [
    lambda: CalibrationReward(matcher="exact"),
    lambda: CalibrationReward(matcher="exact", rule="log"),
    lambda: default_composition(),
], ids=["brier", "log", "default-composition"])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 1.0])
def test_expected_reward_is_maximised_by_the_honest_report(make, q):
    reward = make()
    grid = np.round(np.linspace(0, 1, 21), 2)
    values = [expected_reward(reward, p, q) for p in grid]
    best = grid[int(np.argmax(values))]
    assert abs(best - q) <= 0.05 + 1e-9, (q, best)


CASE = Case(id="brexit", seed="UK votes to leave the EU", outcomes=[
    Outcome(id="o1", event="David Cameron announces his resignation"),
    Outcome(id="o2", event="Theresa May becomes prime minister", parent="o1"),
    Outcome(id="o3", event="The pound falls to a 31-year low against the dollar"),
])
HONEST = tree(("David Cameron announces his resignation", 0.8,
               ("Theresa May becomes prime minister", 0.6)),
              ("The pound falls to a 31-year low against the dollar", 0.8),
              ("Scotland holds a second independence referendum", 0.2))


def score(completion, reward):
    return reward([completion], case=[CASE])[0]


@pytest.fixture(params=["calibration", "default-composition"])
def reward(request, event_matcher):
    if request.param == "calibration":
        return ph.get_reward("calibration", matcher=event_matcher)
    return default_composition(matcher=event_matcher)


def test_honest_tree_beats_junk_at_probability_zero(reward):
    junk = tree(*[(f"Junk event number {i}", 0.0) for i in range(20)])
    assert score(HONEST, reward) > score(junk, reward)


def test_honest_tree_beats_itself_padded_with_junk_at_zero(reward):
    padded = json.loads(HONEST)
    padded["children"] += [{"event": f"Unrelated junk event {i}", "probability": 0.0}
                           for i in range(20)]
    assert score(HONEST, reward) >= score(json.dumps(padded), reward)


def test_honest_tree_beats_one_true_event_repeated(reward):
    repeated = tree(*[("The pound falls to a 31-year low against the dollar", 1.0)] * 10)
    assert score(HONEST, reward) > score(repeated, reward)


def test_honest_tree_beats_padding_with_vague_nodes(reward):
    padded = json.loads(HONEST)
    padded["children"] += [{"event": f"Something notable happens ({i})", "probability": 0.5}
                           for i in range(15)]
    assert score(HONEST, reward) > score(json.dumps(padded), reward)


def test_honest_tree_beats_all_probabilities_at_half(reward):
    hedged = HONEST.replace("0.8", "0.5").replace("0.6", "0.5").replace("0.2", "0.5")
    assert score(HONEST, reward) > score(hedged, reward)


def test_honest_tree_beats_copying_the_seed(reward):
    copy = tree((CASE.seed, 1.0), (CASE.seed, 0.9))
    assert score(HONEST, reward) > score(copy, reward)


def test_malformed_output_gets_a_penalty_and_a_reason():
    reward = ph.get_reward("calibration", matcher="exact")
    values = reward(["{not json", tree(("x", 2.0))], case=[CASE, CASE])
    assert values == [-1.0, -1.0]
    assert reward.last_reasons[0] and "not in [0, 1]" in reward.last_reasons[1]


def test_children_of_false_parents_are_not_scored():
    reward = ph.get_reward("calibration", matcher="exact")
    wrong_parent = tree(("Nothing of the sort", 0.0, ("Theresa May becomes prime minister", 1.0)))
    # the child is conditional on an event that did not happen: not scored, so May is missed
    assert score(wrong_parent, reward) == pytest.approx(-1.0)


def test_sharpness_rewards_resolution_not_extremeness():
    sharp = ph.get_reward("sharpness", matcher="exact")
    right = tree(("The pound falls to a 31-year low against the dollar", 0.95))
    wrong = tree(("Scotland holds a second independence referendum", 0.95))
    hedge = tree(("The pound falls to a 31-year low against the dollar", 0.5))
    assert score(right, sharp) > score(hedge, sharp) > score(wrong, sharp)
    junk = tree(("The pound falls to a 31-year low against the dollar", 0.95),
                *[(f"Junk event {i}", 0.0) for i in range(10)])
    assert score(junk, sharp) == score(right, sharp)  # a confident "no" to junk earns nothing


def test_diversity_penalises_near_duplicate_siblings(event_matcher):
    diversity = ph.get_reward("diversity", matcher=event_matcher)
    distinct = tree(("Cameron resigns", 0.5), ("The pound falls", 0.5))
    dupes = tree(("Cameron resigns", 0.5), ("Cameron resigns.", 0.5), ("The pound falls", 0.5))
    assert diversity([distinct, dupes]) == [0.0, pytest.approx(-1 / 3)]


def test_rewards_accept_conversational_completions_and_dict_cases():
    reward = ph.get_reward("calibration", matcher="exact")
    convo = [{"role": "assistant", "content": HONEST}]
    assert reward([convo], case=[CASE.model_dump()]) == reward([HONEST], case=[CASE])


def test_missing_case_column_is_a_clear_error():
    with pytest.raises(Exception, match="needs a 'case' column"):
        ph.get_reward("calibration")([HONEST])


def test_rewards_pickle_and_keep_working():
    for name in ("calibration", "sharpness", "diversity", "format"):
        reward = pickle.loads(pickle.dumps(ph.get_reward(name)))
        assert len(reward([HONEST], case=[CASE])) == 1


def test_composite_keeps_each_part():
    composite = default_composition()
    total = composite([HONEST], case=[CASE])[0]
    parts = composite.last_values
    assert set(parts) == set(DEFAULT_WEIGHTS)
    assert total == pytest.approx(sum(DEFAULT_WEIGHTS[k] * parts[k][0] for k in parts))


def test_a_tree_scores_the_same_diversity_alone_and_in_a_grpo_group():
    # judged together, the group's other trees took the siblings' places among the cascade's
    # candidates (each text's 3 nearest), so in a group of 64 siblings were hardly compared
    from psychohistory.plugins import get_matcher
    from psychohistory.rewards.diversity import DiversityReward

    cascade = get_matcher("cascade")
    reward = DiversityReward(matcher=cascade)

    def tree(*events):
        return json.dumps({"seed": "S", "children": [{"event": e, "probability": 0.5}
                                                     for e in events]})

    honest = tree("Finland joins NATO", "Finland becomes a member of NATO", "Oil prices fall")
    others = [tree(f"Finland joins NATO{a}", f"Finland joins NATO{b}")
              for a, b in ((".", "!"), (" .", "?"), (";", ":"))]
    alone = reward([honest])[0]
    assert alone < 0  # the verifier calls the first two the same event
    assert reward([honest, *others])[0] == alone
    # the batched blocks are the per-block scores
    texts = ["Finland joins NATO", "Finland becomes a member of NATO", "Oil prices fall"]
    batched = cascade.score_blocks([(texts, texts), (texts[:2], texts[1:])])
    assert np.allclose(batched[0], cascade.score(texts, texts))
    assert np.allclose(batched[1], cascade.score(texts[:2], texts[1:]))

