"""Ticketing payments service: pay orders with Stripe, once."""
