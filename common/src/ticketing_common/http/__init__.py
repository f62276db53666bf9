"""The HTTP side every service shares: route class and body checks, middleware, health."""
