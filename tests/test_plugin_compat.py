"""Plugins written for earlier versions import ``fms.plugin`` and ``fms.interfaces``: those
names keep working, as the very objects of ``fms.apps.api``, so ``isinstance`` checks and
``@implementer`` declarations agree whichever name a plugin used."""

from __future__ import annotations

import fms.apps.api as api
import fms.interfaces as old_interfaces
import fms.plugin as old_plugin


def test_fms_plugin_reexports_the_plugin_api() -> None:
    for name in old_plugin.__all__:
        assert getattr(old_plugin, name) is getattr(api, name)
    assert {"Plugin", "Accept", "Reject", "Redirect", "Rename", "CallError", "NotHandled"} <= set(
        old_plugin.__all__
    )


def test_fms_interfaces_reexports_the_contract() -> None:
    for name in old_interfaces.__all__:
        assert getattr(old_interfaces, name) is getattr(api, name)
