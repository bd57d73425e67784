"""Steps 9 and 10 of `shipyard demo`: a monitoring report on the logged traffic, one watch check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.cli.render import console

if TYPE_CHECKING:
    from shipyard.registry import Registry

__all__ = ["monitoring_demo"]


def monitoring_demo(reg: Registry, ref: str) -> None:
    """Report on the logged traffic and run one check of `monitor watch`, which raises an alert."""
    from datetime import timedelta

    from shipyard.cli.monitor import show_report
    from shipyard.monitoring.alerts import DEFAULT_RULES, Rule
    from shipyard.monitoring.monitor import monitor_report
    from shipyard.monitoring.report import write_report
    from shipyard.monitoring.watch import Watcher

    console.print(f"\n9. [bold]shipyard monitor report {ref} --window 1h --html monitor.html[/]")
    report = monitor_report(reg, ref, window=timedelta(hours=1), buckets=12)
    show_report(report.to_dict())
    path = write_report(report.to_dict(), reg.settings.home / "monitor.html")
    console.print(f"   wrote {path} (self-contained HTML)")
    console.print(f"\n10. [bold]shipyard monitor watch {ref} --every 5m --window 1h[/] (one check)")
    watcher = Watcher(reg, ref, window=timedelta(hours=1), rules=[Rule.parse(r) for r in DEFAULT_RULES])
    check = watcher.check()
    for alert in check.opened:
        console.print(f"   [red]ALERT[/] {alert.rule}: {alert.detail.get('message', '')}", highlight=False)
    again = watcher.check()
    console.print(
        f"   checked again: {len(again.firings)} condition(s) still hold, {len(again.opened)} new alert(s) "
        "(de-duplicated while they last)"
    )
