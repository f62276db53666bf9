"""Shared building blocks of the Ticketing services."""
