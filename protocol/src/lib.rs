//! Strongroom protocol (under construction).
