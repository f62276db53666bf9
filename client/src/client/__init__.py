"""Ticketing client service."""
