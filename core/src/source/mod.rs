//! Image sources: registry, docker-archive, OCI layout, Docker engine. (issue 3)
