"""Sunrise and sunset anywhere, offline, and "sun time": clock time stretched so that sunrise is 06:00 and
sunset 18:00 (Nouvellet et al. 2012), as the R package `overlap`'s `sunTime()` computes it.

    rise, set_ = sunrise_sunset(-2.45, 34.82, date(2024, 3, 1))   # hours after midnight UTC
    solar = sun_time(moment, latitude, longitude)                   # radians, sunrise pi/2, sunset 3 pi/2

The solar position is NOAA's (the algorithm of its Solar Calculator, after Meeus, "Astronomical
Algorithms"), which `maptools::sunriset` and `suncalc` use too: sunrise and sunset when the sun's centre is
0.833 degrees below the horizon (refraction and the sun's radius), within a minute or two of the almanac
between the polar circles. Where the sun does not rise or set that day there is no sun time (None).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

_ZENITH = math.radians(90.833)


def sunrise_sunset(latitude: float, longitude: float, day: date) -> tuple[float, float] | None:
    """Sunrise and sunset on `day` at the place, in hours after that day's 00:00 UTC (either may fall
    outside 0-24 far from Greenwich); None in a polar day or night."""
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC) - timedelta(hours=longitude / 15)
    declination, equation_of_time = _sun(noon)
    lat = math.radians(latitude)
    cos_hour = (math.cos(_ZENITH) - math.sin(lat) * math.sin(declination)) / (
        math.cos(lat) * math.cos(declination)
    )
    if not -1.0 <= cos_hour <= 1.0:
        return None
    hour_angle = math.degrees(math.acos(cos_hour))
    solar_noon = 720 - 4 * longitude - equation_of_time  # minutes after 00:00 UTC
    return (solar_noon - 4 * hour_angle) / 60, (solar_noon + 4 * hour_angle) / 60


def sun_time(moment: datetime, latitude: float, longitude: float) -> float | None:
    """overlap::sunTime for one moment (with its time zone): radians where sunrise is pi/2 and sunset
    3 pi/2, day and night each stretched or squeezed to half the circle; None without sunrise or sunset."""
    utc = moment.astimezone(UTC)
    local_day = (utc + timedelta(hours=longitude / 15)).date()  # the day the place's clocks would say
    times = sunrise_sunset(latitude, longitude, local_day)
    if times is None:
        return None
    offset = (
        datetime(local_day.year, local_day.month, local_day.day, tzinfo=UTC) - utc
    ).total_seconds() / 3600
    hour, (rise, set_) = -offset, times  # the moment in hours after 00:00 UTC of local_day
    day_length = (set_ - rise) % 24
    since_rise = (hour - rise) % 24
    if since_rise < day_length:
        return (math.pi / 2 + since_rise / day_length * math.pi) % (2 * math.pi)
    since_set = (hour - set_) % 24
    return (3 * math.pi / 2 + since_set / (24 - day_length) * math.pi) % (2 * math.pi)


def _sun(moment: datetime) -> tuple[float, float]:
    """The sun's declination (radians) and the equation of time (minutes) at a moment (NOAA)."""
    julian_day = moment.timestamp() / 86400 + 2440587.5
    century = (julian_day - 2451545) / 36525
    mean_longitude = math.radians((280.46646 + century * (36000.76983 + century * 0.0003032)) % 360)
    anomaly = math.radians(357.52911 + century * (35999.05029 - 0.0001537 * century))
    eccentricity = 0.016708634 - century * (0.000042037 + 0.0000001267 * century)
    centre = math.radians(
        math.sin(anomaly) * (1.914602 - century * (0.004817 + 0.000014 * century))
        + math.sin(2 * anomaly) * (0.019993 - 0.000101 * century)
        + math.sin(3 * anomaly) * 0.000289
    )
    omega = math.radians(125.04 - 1934.136 * century)
    apparent = mean_longitude + centre - math.radians(0.00569 + 0.00478 * math.sin(omega))
    obliquity = math.radians(
        23
        + (26 + (21.448 - century * (46.815 + century * (0.00059 - century * 0.001813))) / 60) / 60
        + 0.00256 * math.cos(omega)
    )
    declination = math.asin(math.sin(obliquity) * math.sin(apparent))
    y = math.tan(obliquity / 2) ** 2
    equation = (
        y * math.sin(2 * mean_longitude)
        - 2 * eccentricity * math.sin(anomaly)
        + 4 * eccentricity * y * math.sin(anomaly) * math.cos(2 * mean_longitude)
        - 0.5 * y * y * math.sin(4 * mean_longitude)
        - 1.25 * eccentricity * eccentricity * math.sin(2 * anomaly)
    )
    return declination, 4 * math.degrees(equation)
