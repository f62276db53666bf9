"""The orders service's side of the TICKETING stream."""
