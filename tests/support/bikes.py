"""Facts about the bundled bikes example that several test modules check against."""

# The columns sql/features.sql produces, in order: the model's features plus date and target.
FEATURE_COLUMNS = [
    "dteday",
    "hr",
    "weekday",
    "workingday",
    "holiday",
    "season",
    "mnth",
    "weathersit",
    "temp_c",
    "atemp_c",
    "hum_pct",
    "windspeed_kmh",
    "hour_of_week",
    "is_rush_hour",
    "cnt",
]

# The model's inputs in gyre.yaml: the feature columns without the date and the target.
MODEL_FEATURES = [c for c in FEATURE_COLUMNS if c not in ("dteday", "cnt")]
