"""Schedules and the scheduler: shipyard commands (batch, monitor, evaluate, gates) run on cron."""
