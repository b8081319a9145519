import os

from hypothesis import HealthCheck, settings

# CI replays the same examples every run (derandomize); locally too unless asked otherwise.
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("FEDPRIVACY_HYPOTHESIS_PROFILE", "ci"))
