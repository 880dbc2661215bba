//! Routing: task classification (which route serves a request) and strategies (in which
//! order that route's deployments are tried). Pure functions of the validated table, the
//! request's facts, live stats passed in through a trait, and caller-supplied randomness.

pub mod classify;
pub mod prepare;
pub mod sticky;
pub mod strategy;

pub use classify::{classify, Classification, RequestFacts, Source, TASK_HEADER};
pub use strategy::{explain, plan, DeploymentStats, NoStats, Plan, PlanInput};

#[cfg(test)]
mod classify_tests;
#[cfg(test)]
mod prepare_tests;
#[cfg(test)]
mod strategy_draws_tests;
#[cfg(test)]
mod strategy_tests;
