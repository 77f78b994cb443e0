"""Runs as OpenTelemetry spans: scope, lifecycle, export and console output."""
