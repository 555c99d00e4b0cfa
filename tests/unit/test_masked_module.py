"""plugins/modules/ailab_masked.py: systemd units masked with one systemctl call (its pure parts)."""

from __future__ import annotations

from tests.unit.scripts import load_node_script

masked = load_node_script("plugins/modules/ailab_masked.py", "ailab_masked")


def test_only_units_not_masked_yet_are_masked():
    names = ["a.socket", "b.socket", "c.socket", "a.socket"]
    assert masked.unmasked(names, "masked\nenabled\nmasked-runtime\n") == ["b.socket"]
    assert masked.unmasked(names, "masked\nmasked\nmasked\n") == []


def test_output_that_does_not_match_the_names_masks_them_all():
    # an unknown unit prints its error on stderr, not a line: every state is unknown, masking is repeatable
    assert masked.unmasked(["a.socket", "gone.socket"], "masked\n") == ["a.socket", "gone.socket"]


def test_only_active_units_are_stopped():
    names = ["docker.socket", "docker.service", "containerd.service"]
    assert masked.running(names, "inactive\nactive\nfailed\n") == ["docker.service"]
    assert masked.running(names, "activating\ninactive\ninactive\n") == ["docker.socket"]
