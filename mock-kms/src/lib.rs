//! Strongroom mock KMS (under construction).
