//! Loopback stand-in for a GitLab instance.
