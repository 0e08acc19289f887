//! Bundle rendering for the exec helper: config.json and tmpfiles. (issue 4)
