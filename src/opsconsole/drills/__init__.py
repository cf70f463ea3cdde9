"""Disaster-recovery drills: definitions, the scheduler service, records and the
compliance report.

Modules: ``model`` (the drills.yaml format), ``loader`` (load/edit the file, the
production guard), ``schedule`` (cron and one-off due dates), ``store`` (tables and
queries), ``execute`` (running a live drill through the runbook engine), ``records``
(tabletop drills, plan reviews, follow-ups), ``service`` (the APScheduler service),
``lock`` (one scheduler per database), ``report`` (the programme report).

This package imports nothing heavy on import: ``opsconsole.store`` loads
``drills.store`` for its migrations.
"""
