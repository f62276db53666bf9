"""The payments service's side of the TICKETING stream."""
