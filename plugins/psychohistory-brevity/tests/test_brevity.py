import pickle

import pytest
from psychohistory_brevity import BrevityReward

TREE = '{"seed": "S", "children": [{"event": "%s", "probability": 0.5}]}'


def test_short_events_get_full_reward():
    assert BrevityReward(max_words=5)([TREE % "The pound falls"]) == [1.0]


def test_long_events_are_penalised_in_proportion():
    long_event = " ".join(["word"] * 10)  # 5 words over a limit of 5
    assert BrevityReward(max_words=5)([TREE % long_event]) == [0.0]
    assert BrevityReward(max_words=8)([TREE % long_event]) == [0.75]


def test_unparsable_completion_scores_zero():
    assert BrevityReward()(["no tree"]) == [0.0]


def test_rejects_bad_option():
    with pytest.raises(ValueError, match="max_words"):
        BrevityReward(max_words=0)


def test_pickles_with_its_name():
    reward = pickle.loads(pickle.dumps(BrevityReward(max_words=3)))
    assert reward.__name__ == "brevity" and reward.max_words == 3
