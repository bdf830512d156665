-- features: one row per hour with the model's inputs and its target.
--
-- Input: the `rentals` source (typed by contracts/rentals.yaml; quarantined rows never get
-- here). Weather columns arrive normalised by the data's publisher and are turned back into
-- units a person can read, so that drift reports speak degrees and percent.
-- Left out on purpose: yr (lets the model memorise growth), casual and registered (they add up
-- to cnt and leak the target), instant (a row counter).
SELECT
    CAST(dteday AS DATE)                        AS dteday,        -- time column (holdout, windows)
    hr,
    weekday,                                                      -- 0 = Sunday
    workingday,
    holiday,
    season,
    mnth,
    weathersit,
    round(temp * 41, 2)                         AS temp_c,        -- degrees C
    round(atemp * 50, 2)                        AS atemp_c,       -- felt temperature, degrees C
    round(hum * 100, 1)                         AS hum_pct,       -- relative humidity, %
    round(windspeed * 67, 2)                    AS windspeed_kmh,
    weekday * 24 + hr                           AS hour_of_week,  -- 0..167: the weekly rhythm
    CASE
        WHEN workingday = 1 AND hr IN (7, 8, 9, 16, 17, 18, 19) THEN 1
        ELSE 0
    END                                         AS is_rush_hour,  -- commuter peaks
    cnt                                                           -- target: rentals in the hour
FROM rentals
ORDER BY dteday, hr   -- deterministic order: the time-based holdout depends on it
