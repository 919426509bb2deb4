"""Every first-party registered component must be exercised by name in some test."""

from pathlib import Path

from affectkit.plugins import get_plugin_manager

TESTS = Path(__file__).resolve().parents[1]


def test_every_registered_component_is_named_in_a_test():
    text = "\n".join(p.read_text() for p in TESTS.rglob("test_*.py"))
    mgr = get_plugin_manager()
    untested = [
        f"{e.kind} {e.name!r} ({e.plugin})"
        for e in mgr.registry.entries()
        if e.distribution == "affectkit" and f'"{e.name}"' not in text and f"'{e.name}'" not in text
    ]
    assert not untested, f"registered without a test naming them: {untested}"
    assert not mgr.failures, [f.error for f in mgr.failures]
