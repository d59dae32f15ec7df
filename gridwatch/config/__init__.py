"""Site config: schema, loader with located errors, schedules, broker URLs."""

from .broker import BrokerUrl
from .loader import ConfigError, Problem, load_site, load_text
from .models import (
    Area,
    CentralConfig,
    ContactIdZone,
    Device,
    Door,
    Edge,
    Escalation,
    Grid,
    Person,
    RuleOverride,
    SiteConfig,
    SiteInfo,
    TsdbConfig,
    User,
    Zone,
)
from .schedule import Schedule

__all__ = [
    "Area", "BrokerUrl", "CentralConfig", "ConfigError", "ContactIdZone", "Device", "Door", "Edge",
    "Escalation", "Grid", "Person", "Problem", "RuleOverride", "Schedule", "SiteConfig", "SiteInfo",
    "TsdbConfig", "User", "Zone", "load_site", "load_text",
]
