//! Metric sources for threshold rules: the host's HTTP traffic ([`RequestStats`] fed by
//! [`RequestStatsLayer`]), named events ([`EventCounter`]), a SQL scalar ([`PostgresScalar`]) and closures
//! ([`FnSource`]); what a rule reads from them ([`Measure`], [`WindowedSource`]).

pub(crate) mod events;
pub(crate) mod func;
pub(crate) mod layer;
pub(crate) mod measure;
pub(crate) mod request;
pub(crate) mod scalar;
pub(crate) mod window;
