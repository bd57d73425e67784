"""Pure values and logic: references, contracts, batches, profiles. No I/O, no framework imports."""
