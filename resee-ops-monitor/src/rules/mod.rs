//! Threshold rules over metric sources: [`Rule`] (the semantics), [`RuleEvaluator`] (runs them and alerts),
//! [`presets`] (the seed's four rules).

pub(crate) mod evaluator;
pub(crate) mod presets;
pub(crate) mod rule;
