"""Ticketing orders service."""
