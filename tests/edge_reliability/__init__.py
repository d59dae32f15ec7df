"""Edge reliability against real Mosquitto: malformed-input accounting and uplink outages."""
