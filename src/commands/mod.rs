//! The subcommands besides serving: `sluice health` (a container health
//! check, [`health_probe`]) and `sluice sign` (a signed processing path,
//! [`sign`]).

pub mod health_probe;
pub mod sign;
