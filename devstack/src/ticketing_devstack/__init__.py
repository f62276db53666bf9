"""Ticketing on one machine: the runner behind `make dev` and the gateway route table."""
