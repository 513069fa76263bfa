import psychohistory as ph


def test_every_public_name_has_a_docstring_with_an_example():
    for name in ph.__all__:
        value = getattr(ph, name)
        if name.startswith("__") or name == "hookimpl":  # hookimpl is pluggy's marker object
            continue
        assert ">>>" in (getattr(value, "__doc__", None) or ""), f"{name} has no example"


def test_unknown_attribute_is_an_attribute_error():
    try:
        ph.NotAThing  # noqa: B018
    except AttributeError as exc:
        assert "NotAThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
