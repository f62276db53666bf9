"""Events the tickets service publishes and the listeners it runs."""
