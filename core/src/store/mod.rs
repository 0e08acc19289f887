//! The OSTree image store. (issue 3)
