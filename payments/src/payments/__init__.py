"""Ticketing payments service."""
