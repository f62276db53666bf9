"""Ticketing auth service."""
