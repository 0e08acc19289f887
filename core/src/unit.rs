//! Rendering a record into a systemd service unit.
