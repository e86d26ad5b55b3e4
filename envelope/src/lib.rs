//! Strongroom envelope (under construction).
