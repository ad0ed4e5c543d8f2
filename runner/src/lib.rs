//! Boot and live-migration checks for imgbuild guests.
