//! Records to units: the pure conversion and the writer.
