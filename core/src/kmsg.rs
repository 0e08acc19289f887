//! Logging to /dev/kmsg, with stderr as fallback.
