//! Deployments: install, update, rollback, uninstall. (issue 4)
