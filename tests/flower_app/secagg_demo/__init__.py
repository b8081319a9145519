"""One round of fedprivacy's SecAgg+ under Flower, as a Flower user would write it (tests only)."""
