import psychohistory as ph


def test_every_public_name_resolves_and_has_a_docstring():
    for name in ph.__all__:
        value = getattr(ph, name)
        if name.startswith("__"):
            continue
        assert getattr(value, "__doc__", None), f"{name} has no docstring"


def test_unknown_attribute_is_an_attribute_error():
    try:
        ph.NotAThing  # noqa: B018
    except AttributeError as exc:
        assert "NotAThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
